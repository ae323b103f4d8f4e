#!/usr/bin/env node
/**
 * The `fulcrum` command: a thin layer over the library.
 *
 *   fulcrum [start] -c fulcrum.yaml
 *   fulcrum --port 8080 --backend http://127.0.0.1:8081 --backend http://127.0.0.1:8082
 *   fulcrum demo [--port 8080] [--backends 3]
 *   fulcrum backend --port 8081 [--name "Backend 1"]
 *   fulcrum validate -c FILE
 *   fulcrum routes -c FILE [--test "GET https://api.example.com/v1/users"] [-H "Name: value"]
 *   fulcrum schema [-o FILE]
 */
import cluster from 'node:cluster';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createBalancer } from './index.js';
import { loadConfig, type CliOverrides } from './config/load.js';
import { ConfigError } from './core/config-error.js';
import { createLogger, LOG_FORMATS, logFormatFor, type LogFormat } from './observe/log.js';
import { startDemo } from './demo/demo.js';
import { startDemoBackend } from './demo/backend.js';
import { Fulcrum } from './app/fulcrum.js';
import { configWarnings } from './config/load.js';
import type { FulcrumConfig } from './config/schema.js';
import { routeName } from './config/services.js';
import { describeRoute } from './routing/describe.js';
import { explainRequest } from './routing/explain.js';
import { isFulcrumWorker, workerCount } from './core/cluster-env.js';
import { runPrimary } from './cluster/primary.js';
import { serveAsWorker, workerLogger } from './cluster/worker.js';

const EXIT_USAGE = 2;

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number (0-65535)');
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError('expected a number from 1 to 100');
  return n;
}

function parseWorkers(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a number of workers (1 or more) or "auto"');
  return n;
}

interface StartFlags {
  config?: string;
  port?: number;
  host?: string;
  backend?: string[];
  algorithm?: string;
  logLevel?: string;
  accessLog?: boolean;
  adminPort?: number;
  workers?: number | 'auto';
  healthPath?: string;
  healthInterval?: string;
  healthCheck?: boolean;
  logFormat?: LogFormat;
}

/** onSignals drains on the first SIGTERM/SIGINT (exit 0) and exits at once on a second one. */
function onSignals(stop: () => Promise<void>, reload?: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`fulcrum: second ${signal}, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`fulcrum: error while stopping: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  if (reload !== undefined) process.on('SIGHUP', () => { void reload(); });
}

/** logFormatOption: --log-format, for the commands that log. */
function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log lines: pretty (for people, with colours) or json; default pretty on a terminal, json otherwise').choices(LOG_FORMATS);
}

/** outputFormat: the log format asked for, else what suits stdout (see logFormatFor). */
function outputFormat(asked: LogFormat | undefined): LogFormat {
  return logFormatFor(asked, process.stdout.isTTY === true);
}

function fail(message: string, code = 1): never {
  process.stderr.write(`fulcrum: ${message}\n`);
  process.exit(code);
}

async function start(flags: StartFlags): Promise<void> {
  const overrides: CliOverrides = {};
  if (flags.port !== undefined) overrides.port = flags.port;
  if (flags.host !== undefined) overrides.host = flags.host;
  if (flags.backend !== undefined) overrides.backends = flags.backend;
  if (flags.algorithm !== undefined) overrides.algorithm = flags.algorithm;
  if (flags.logLevel !== undefined) overrides.logLevel = flags.logLevel;
  if (flags.accessLog === false) overrides.accessLog = false;
  if (flags.adminPort !== undefined) overrides.adminPort = flags.adminPort;
  if (flags.workers !== undefined) overrides.workers = flags.workers;
  if (flags.healthPath !== undefined) overrides.healthPath = flags.healthPath;
  if (flags.healthInterval !== undefined) overrides.healthInterval = flags.healthInterval;
  if (flags.healthCheck === false) overrides.healthCheck = false;
  const load = () => loadConfig({ ...(flags.config === undefined ? {} : { file: flags.config }), flags: overrides });
  let loaded;
  try {
    loaded = load();
  } catch (err) {
    if (err instanceof ConfigError) fail(`invalid configuration:\n${err.message}`, EXIT_USAGE);
    throw err;
  }
  const { config, file } = loaded;
  const serviceWithBackends = Object.values(config.services).some((s) => s.backends.length > 0 || (s.discovery?.length ?? 0) > 0);
  const onlyAnswers = config.routes.length > 0 && config.routes.every((r) => r.service === undefined);
  if (!serviceWithBackends && !onlyAnswers) {
    fail('no backends configured.\n'
      + '  Pass them on the command line:  fulcrum --port 8080 --backend http://127.0.0.1:8081 --backend http://127.0.0.1:8082\n'
      + '  or use a config file:           fulcrum -c fulcrum.yaml   (see examples/fulcrum.yaml)\n'
      + '  or try the demo:                fulcrum demo\n'
      + 'Run "fulcrum --help" for every option.', EXIT_USAGE);
  }
  const workers = workerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) {
    // The primary serves nothing itself: it forks the workers (which run this command again) and looks after them.
    runPrimary({ workers, logLevel: config.logLevel, logFormat: outputFormat(flags.logFormat), drainTimeout: config.drainTimeout, configFile: file });
    return;
  }
  const logger = workerLogger(createLogger({ level: config.logLevel, format: outputFormat(flags.logFormat) }));
  let balancer: Fulcrum;
  try {
    balancer = createBalancer(config, { logger, ...(file === undefined ? {} : { configFile: file, loadConfig: () => load().config }) });
    await balancer.listen();
  } catch (err) {
    logger.flush();
    if (err instanceof ConfigError) fail(`invalid configuration:\n${err.message}`, EXIT_USAGE);
    fail(`cannot start: ${(err as Error).message}`);
  }
  const reload = async () => {
    if (file === undefined) { logger.warn('SIGHUP: no config file to reload'); return null; }
    return balancer.reload();
  };
  if (isFulcrumWorker()) serveAsWorker(balancer, reload);
  else onSignals(() => balancer.close(), async () => { await reload(); });
}

export function buildProgram(): Command {
  const program = new Command('fulcrum')
    .description('Fulcrum: an L7 HTTP load balancer')
    .version(readVersion(), '-v, --version', 'print the version')
    .showHelpAfterError('(run "fulcrum --help" for usage)')
    .addHelpText('after', '\nWith no command, "start" runs: see "fulcrum start --help" for its options (-c, --port, --backend...).\n'
      + 'Examples:\n  fulcrum -c fulcrum.yaml\n  fulcrum --port 8080 --backend http://127.0.0.1:8081 --backend http://127.0.0.1:8082\n  fulcrum demo\n')
    .exitOverride((err) => {
      // commander's own exits: --help/--version exit 0, usage errors exit 2.
      process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE);
    });

  const startCmd = program.command('start', { isDefault: true })
    .description('run the load balancer (the default command)')
    .option('-c, --config <file>', 'config file (.yaml, .yml or .json); also FULCRUM_CONFIG')
    .option('-p, --port <port>', 'port of the main listener; also FULCRUM_PORT', parsePort)
    .option('--host <host>', 'address of the main listener (default 0.0.0.0)')
    .option('-b, --backend <url>', 'a backend URL; repeat for more', collect)
    .option('-a, --algorithm <name>', 'balancing algorithm (default round-robin)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .addOption(logFormatOption())
    .option('--no-access-log', 'do not log a line per request')
    .option('--admin-port <port>', 'serve /status, /metrics and /admin on their own port', parsePort)
    .option('--workers <n|auto>', 'processes serving requests: a number, or auto (one per CPU); default 1', parseWorkers)
    .option('--health-path <path>', 'path of the active health check (healthCheck.path, default /health)')
    .option('--health-interval <duration>', 'time between health checks, e.g. 5s (healthCheck.interval, default 10s)')
    .option('--no-health-check', 'no active health checks (healthCheck.enabled: false); passive checks stay')
    .action((flags: StartFlags) => start(flags));
  startCmd.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));

  program.command('demo')
    .description('start the demo: a balancer on --port and N demo backends on the next ports')
    .option('-p, --port <port>', 'balancer port', parsePort, 8080)
    .option('-n, --backends <n>', 'number of demo backends', parseCount, 3)
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .addOption(logFormatOption())
    .action(async (flags: { port: number; backends: number; logLevel: string; logFormat?: LogFormat }) => {
      const logger = createLogger({ level: flags.logLevel, format: outputFormat(flags.logFormat) });
      let demo;
      try {
        demo = await startDemo({ port: flags.port, backends: flags.backends, logger });
      } catch (err) {
        logger.flush();
        fail(`cannot start the demo: ${(err as Error).message}`);
      }
      process.stdout.write(`\nFulcrum demo: http://localhost:${demo.balancer.port}/  (status: /status, metrics: /metrics)\n`
        + `Backends: ${demo.backends.map((b) => `http://127.0.0.1:${b.port}`).join(', ')}\nPress Ctrl-C to stop.\n\n`);
      onSignals(() => demo.close());
    });

  program.command('backend')
    .description('run a demo backend (for demos and tests)')
    .option('-p, --port <port>', 'port to listen on', parsePort, 8081)
    .option('--host <host>', 'address to listen on', '0.0.0.0')
    .option('--name <name>', 'name shown in responses (default "Backend on <port>")')
    .action(async (flags: { port: number; host: string; name?: string }) => {
      let backend;
      try {
        backend = await startDemoBackend({ port: flags.port, host: flags.host, ...(flags.name === undefined ? {} : { name: flags.name }) });
      } catch (err) {
        fail(`cannot start the backend: ${(err as Error).message}`);
      }
      process.stdout.write(`${backend.name} listening on http://${flags.host}:${backend.port}\n`);
      onSignals(() => backend.close());
    });

  program.command('validate')
    .description('check a config file; print "ok" or every problem, exit non-zero when invalid')
    .requiredOption('-c, --config <file>', 'config file to check')
    .action((flags: { config: string }) => {
      try {
        const { config } = loadConfig({ file: flags.config, env: {} });
        const warnings = configWarnings(config);
        for (const w of warnings) process.stderr.write(`warning: ${w.source}: ${w.path}: ${w.message}\n`);
        // The one-pool form's single catch-all route says nothing: its output stays "ok".
        const routed = config.routes.length > 1 || Object.keys(config.services).length > 1;
        process.stdout.write(`${routed ? routeTable(config) : ''}ok\n`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`${err.problems.length} problem${err.problems.length > 1 ? 's' : ''} found:\n${err.message}\n`);
        process.exit(1);
      }
    });

  program.command('routes')
    .description('print the compiled route table; with --test, which route and service a request gets and what the backend sees (exit 1 when nothing matches)')
    .requiredOption('-c, --config <file>', 'config file')
    .option('--test <request>', 'a request such as "GET https://api.example.com/v1/users"')
    .option('-H, --header <header...>', 'a request header for --test, "Name: value" (repeatable)')
    .option('--client <address>', 'the client address for --test (allow/deny lists)', '127.0.0.1')
    .action(async (flags: { config: string; test?: string; header?: string[]; client: string }) => {
      let config;
      try {
        config = loadConfig({ file: flags.config, env: {} }).config;
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        fail(`invalid configuration:\n${err.message}`, EXIT_USAGE);
      }
      if (flags.test === undefined) {
        process.stdout.write(routeTable(config));
        return;
      }
      const m = /^\s*([A-Za-z]+)\s+(\S+)\s*$/.exec(flags.test);
      let url: URL | null = null;
      try { url = m === null ? null : new URL(m[2]!); } catch { url = null; }
      if (m === null || url === null) fail('--test: expected "METHOD URL", e.g. "GET https://api.example.com/v1/users"', EXIT_USAGE);
      const headers: string[] = [];
      for (const h of flags.header ?? []) {
        const at = h.indexOf(':');
        if (at <= 0) fail(`--header: expected "Name: value", got ${JSON.stringify(h)}`, EXIT_USAGE);
        headers.push(h.slice(0, at).trim(), h.slice(at + 1).trim());
      }
      const balancer = new Fulcrum(config, { logger: createLogger({ level: 'silent' }) });
      try {
        // The target as written: URL would normalize the path, which is what routing must be seen doing.
        const target = m![2]!.replace(/^[a-z]+:\/\/[^/?#]*/i, '') || '/';
        const result = explainRequest(balancer.proxy.routes, { method: m![1]!, target, host: url!.host, headers, clientAddress: flags.client });
        if (!result.matched) {
          process.stdout.write(`no route: ${result.status} ${result.reason}\n`);
          process.exitCode = 1;
          return;
        }
        const lines = [`route:   ${result.route.name}`, `action:  ${result.action}`];
        if (result.service !== null) {
          lines.push(`path:    ${result.path}`, 'headers:');
          for (let i = 0; i < result.headers.length; i += 2) lines.push(`  ${result.headers[i]}: ${result.headers[i + 1]}`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        await balancer.close({ drainTimeout: 0 });
      }
    });

  program.command('schema')
    .description('print the JSON Schema of the config file, for editors (yaml-language-server) and CI checks')
    .option('-o, --out <file>', 'write it to this file instead of stdout')
    .action(async (flags: { out?: string }) => {
      // Loaded here only: the balancer itself never needs the JSON Schema generator.
      const { configJsonSchema } = await import('./config/json-schema.js');
      const text = `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
      if (flags.out === undefined) process.stdout.write(text);
      else writeFileSync(flags.out, text);
    });

  return program;
}

/** routeTable prints the routes in order, one line each: name, what it matches, what it does. */
function routeTable(config: FulcrumConfig): string {
  const rows = config.routes.map((route, i) => describeRoute({ name: routeName(route, i), config: route }));
  const w = Math.max(5, ...rows.map((r) => r.name.length));
  const m = Math.max(5, ...rows.map((r) => r.match.length));
  let out = `${'route'.padEnd(w)}  ${'match'.padEnd(m)}  action\n`;
  for (const r of rows) out += `${r.name.padEnd(w)}  ${r.match.padEnd(m)}  ${r.action}\n`;
  return out;
}

function readVersion(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

buildProgram().parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`fulcrum: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
