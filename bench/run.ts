/**
 * `npm run bench`: a load benchmark that measures the balancer's CPU time
 * per request, not just its throughput.
 *
 * Rig: the balancer runs alone on CPU 0; the two backends and the load
 * generator share CPU 1 (when `taskset` exists). wrk is used when installed
 * (Debian package `wrk`), else autocannon. Each scenario: a warm-up, then
 * several rounds; we report medians and the spread. CPU time is read from
 * /proc/<pid>/stat over each measured window; CPU-µs/request = CPU time /
 * completed requests. The direct run sends the same load straight to one
 * backend, for the ratio. A scenario may let the balancer use more CPUs
 * (`cpus`, for `workers: N`); its CPU time and RSS then sum the primary and
 * its workers.
 *
 * The floor: the same minimal node:http server the backends run, alone on
 * the balancer's CPU and loaded directly; its CPU per request is what the
 * platform costs before any proxying, the yardstick between rigs.
 * All targets are started first and measured round by round in turn.
 *
 * HTTP/2: the `h2c-to-h2c` and `grpc-unary` scenarios proxy to HTTP/2
 * backends (bench/h2-backend-server.ts), driven by h2load; with
 * `--compare`, HAProxy does the same over `proto h2` in the same run.
 *
 * Usage: node dist/bench/run.js [--rounds 5] [--duration 5] [--connections 64]
 *          [--scenarios default,no-access-log,...|all] [--compare] [--json FILE] [--help]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GRPC_PATH, scenarios, type Scenario } from './scenarios.js';
import { freePort, waitPort } from './net.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(here, '../src/cli.js');
const BACKEND = join(here, 'backend-server.js');
const COMPETITORS = join(here, 'competitors.js');
const H2_BACKEND = join(here, 'h2-backend-server.js');
/** The loads whose scenarios proxy to HTTP/2 backends. */
const H2_BACKEND_LOADS = new Set<string>(['h2c', 'grpc']);

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    scenarios: { type: 'string', default: 'default,no-access-log' },
    compare: { type: 'boolean', default: false },
    direct: { type: 'boolean', default: true },
    'no-direct': { type: 'boolean', default: false },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`Usage: npm run bench -- [options]
  --rounds N         measured rounds per target (default 5), interleaved across targets
  --duration S       seconds per round (default 5)
  --warmup S         seconds of warm-up per target (default 3)
  --connections N    keep-alive connections (default 64)
  --scenarios LIST   comma-separated, or "all" (default: default,no-access-log); one of:
                     ${Object.keys(scenarios).join(', ')}
  --compare          add node-http-proxy, @fastify/http-proxy and, when installed, HAProxy
  --no-direct        leave out the direct-to-backend run and the bare-server floor
  --json FILE        also write the results as JSON`);
  process.exit(0);
}
const ROUNDS = Number(args.rounds);
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CONNECTIONS = Number(args.connections);

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const TASKSET = has('taskset') && (await import('node:os')).cpus().length >= 2;
const WRK = has('wrk');
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || '100');

function pinned(cpu: number | string, cmd: string, cmdArgs: string[]): [string, string[]] {
  return TASKSET ? ['taskset', ['-c', String(cpu), cmd, ...cmdArgs]] : [cmd, cmdArgs];
}

/** processTree: pid and its descendants (a cluster's workers), from /proc/<pid>/task/<pid>/children. */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch { /* gone, or no children file */ }
  return [pid, ...children.flatMap(processTree)];
}

/** cpuTicks: CPU time of the process and its live descendants. */
function cpuTicks(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    let stat: string;
    try { stat = readFileSync(`/proc/${p}/stat`, 'utf8'); } catch { continue; } // exited meanwhile
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15 of stat)
  }
  return ticks;
}

/** peakRssMiB: the sum of the peak RSS of the process and its live descendants. */
function peakRssMiB(pid: number): number {
  let kb = 0;
  for (const p of processTree(pid)) {
    let status: string;
    try { status = readFileSync(`/proc/${p}/status`, 'utf8'); } catch { continue; }
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    if (m) kb += Number(m[1]);
  }
  return kb / 1024;
}

/** The pid that does the work: taskset execs, so the child's pid is the process itself. */
function start(cpu: number | string, cmd: string, cmdArgs: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const [c, a] = pinned(cpu, cmd, cmdArgs);
  return spawn(c, a, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
}

interface LoadResult { requests: number; rps: number; p50: number; p99: number; errors: number }

type LoadKind = NonNullable<Scenario['load']>;

/** GRPC_BODY: the file h2load sends as each unary gRPC call's request (one small message), written by main. */
let grpcBody = '';

/** H2_STREAMS: concurrent streams per connection for the h2c and gRPC loads (clients multiplex; h2 over TLS keeps 1). */
const H2_STREAMS = 8;

/**
 * h2load drives HTTP/2 (Debian package nghttp2-client); it reports no
 * percentiles. `h2`: TLS, one stream per connection; `h2c`: cleartext
 * with prior knowledge, several streams per connection; `grpc`: the same,
 * each request a unary gRPC call (POST, content-type application/grpc,
 * te: trailers, one message).
 */
async function loadH2(url: string, seconds: number, kind: 'h2' | 'h2c' | 'grpc'): Promise<LoadResult> {
  const streams = kind === 'h2' ? 1 : H2_STREAMS;
  const grpc = kind === 'grpc' ? ['-d', grpcBody, '-H', 'content-type: application/grpc', '-H', 'te: trailers'] : [];
  const [c, a] = pinned(1, 'h2load', ['-c', String(CONNECTIONS), '-m', String(streams), '-D', String(seconds), ...grpc, url]);
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`h2load exited ${code}`))));
  });
  const done = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const mean = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(out);
  const meanMs = mean === null ? NaN : Number(mean[1]) / (mean[2] === 'us' ? 1000 : mean[2] === 's' ? 0.001 : 1);
  const requests = Number(done?.[2] ?? 'NaN');
  return { requests, rps: requests / seconds, p50: meanMs, p99: NaN, errors: Number(done?.[3] ?? 0) + Number(done?.[4] ?? 0) };
}

async function load(url: string, seconds: number, kind: LoadKind = 'keep-alive'): Promise<LoadResult> {
  if (kind === 'h2' || kind === 'h2c' || kind === 'grpc') return loadH2(url, seconds, kind);
  if (WRK) {
    const [c, a] = pinned(1, 'wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', ...(kind === 'close' ? ['-H', 'Connection: close'] : []), url]);
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}`))));
    });
    const num = (re: RegExp): number => Number(re.exec(out)?.[1] ?? 'NaN');
    const ms = (re: RegExp): number => {
      const m = re.exec(out);
      if (!m) return NaN;
      const v = Number(m[1]);
      return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
    };
    const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
    const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    return {
      requests: num(/(\d+) requests in/),
      rps: num(/Requests\/sec:\s+([\d.]+)/),
      p50: ms(/50%\s+([\d.]+)(us|ms|s)/),
      p99: ms(/99%\s+([\d.]+)(us|ms|s)/),
      errors: (errors ? Number(errors[1]) : 0) + (socketErrors ? socketErrors.slice(1).map(Number).reduce((a, b) => a + b, 0) : 0),
    };
  }
  const [c, a] = pinned(1, process.execPath, [join(here, '../../node_modules/autocannon/autocannon.js'), '-j', '-c', String(CONNECTIONS), '-d', String(seconds), url]);
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    child.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`autocannon exited ${code}`))));
  });
  const r = JSON.parse(out) as { requests: { total: number; average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
  return { requests: r.requests.total, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.non2xx + r.errors };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

interface Row { name: string; rps: number; p50: number; p99: number; cpuUsPerReq: number | null; cpuSpread: [number, number] | null; rssMiB: number | null; errors: number; rounds: number }

/** A Target is one thing under load: a URL, and the process whose CPU time it costs (none for the direct run). */
interface Target { name: string; url: string; pid: number | null; kind: LoadKind; rounds: (LoadResult & { cpu: number | null })[]; rssMiB: number | null }

async function round(t: Target, seconds: number): Promise<void> {
  const before = t.pid === null ? 0 : cpuTicks(t.pid);
  const r = await load(t.url, seconds, t.kind);
  const cpu = t.pid === null ? null : ((cpuTicks(t.pid) - before) / CLK_TCK) * 1e6 / r.requests;
  t.rounds.push({ ...r, cpu });
}

function summarize(t: Target): Row {
  const rounds = t.rounds;
  const cpus = rounds.map((r) => r.cpu).filter((c): c is number => c !== null);
  return {
    name: t.name,
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    cpuUsPerReq: cpus.length ? median(cpus) : null,
    cpuSpread: cpus.length ? [Math.min(...cpus), Math.max(...cpus)] : null,
    rssMiB: t.rssMiB,
    errors: rounds.reduce((a, r) => a + r.errors, 0),
    rounds: rounds.length,
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * main starts every target first, then measures them round by round in
 * turn (interleaved), so that a change in the machine's other load during
 * the run falls on all of them alike rather than on whichever ran then.
 */
async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  const backendPorts = [await freePort(), await freePort()];
  const backends = start(1, process.execPath, [BACKEND, ...backendPorts.map(String)]);
  const targets: Target[] = [];
  const cleanups: (() => Promise<void>)[] = [() => stop(backends)];
  const add = (name: string, url: string, pid: number | null, kind: LoadKind = 'keep-alive'): void => {
    targets.push({ name, url, pid, kind, rounds: [], rssMiB: null });
  };
  try {
    await Promise.all(backendPorts.map((p) => waitPort(p)));
    const upstreams = backendPorts.map((p) => `http://127.0.0.1:${p}`);
    const wanted = args.scenarios === 'all' ? Object.keys(scenarios) : args.scenarios.split(',');
    // HTTP/2 backends, for the scenarios that proxy to them (h2c, gRPC).
    const h2Ports: number[] = [];
    if (wanted.some((key) => H2_BACKEND_LOADS.has(scenarios[key]?.load ?? 'keep-alive'))) {
      h2Ports.push(await freePort(), await freePort());
      const h2 = start(1, process.execPath, [H2_BACKEND, ...h2Ports.map(String)]);
      cleanups.push(() => stop(h2));
      await Promise.all(h2Ports.map((p) => waitPort(p)));
      grpcBody = join(dir, 'grpc-request.bin');
      const request = Buffer.from('bench request');
      writeFileSync(grpcBody, Buffer.concat([Buffer.from([0, 0, 0, 0, request.length]), request]));
    }
    const h2Upstreams = h2Ports.map((p) => `h2c://127.0.0.1:${p}`);
    if (args.direct && !args['no-direct']) {
      add('direct to one backend (no proxy)', `${upstreams[0]}/`, null);
      // The platform's floor: the same minimal node:http server, alone on the balancer's CPU.
      const port = await freePort();
      const floor = start(0, process.execPath, [BACKEND, String(port)]);
      cleanups.push(() => stop(floor));
      await waitPort(port);
      add('bare node:http server answering itself (the floor)', `http://127.0.0.1:${port}/`, floor.pid!);
    }
    for (const key of wanted) {
      const scenario: Scenario | undefined = scenarios[key];
      if (scenario === undefined) throw new Error(`unknown scenario "${key}": expected one of ${Object.keys(scenarios).join(', ')}`);
      if ((scenario.load === 'h2' || scenario.load === 'h2c' || scenario.load === 'grpc') && !has('h2load')) {
        console.error(`skipping "${key}": h2load is not installed (apt-get install nghttp2-client)`);
        continue;
      }
      const port = await freePort();
      const ctx = await scenario.setup?.(dir) ?? {};
      if (scenario.teardown !== undefined) cleanups.push(() => scenario.teardown!(ctx));
      const config = scenario.config({ port, targets: upstreams, h2Targets: h2Upstreams, ...ctx });
      const file = join(dir, `${key}.json`);
      writeFileSync(file, JSON.stringify(config));
      const balancer = start(scenario.cpus ?? 0, process.execPath, [CLI, '-c', file], scenario.env?.(ctx) ?? {});
      cleanups.push(() => stop(balancer));
      await waitPort(port);
      add(`fulcrum: ${scenario.title}`, scenario.url?.(port) ?? `http://127.0.0.1:${port}/`, balancer.pid!, scenario.load);
    }
    if (args.compare) {
      for (const kind of ['http-proxy', 'fastify']) {
        const port = await freePort();
        const child = spawn(...pinned(0, process.execPath, [COMPETITORS, kind, String(port), ...upstreams]), { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        cleanups.push(() => stop(child));
        await waitPort(port);
        add(kind === 'http-proxy' ? 'node-http-proxy 1.18' : '@fastify/http-proxy', `http://127.0.0.1:${port}/`, child.pid!);
      }
      // HAProxy, for scale, when installed (Debian package haproxy): one thread, round-robin, keep-alive both ways.
      if (has('haproxy')) {
        /** haproxy starts one HAProxy on the proxy's CPU with `config(port)` and returns its port and pid. */
        const haproxy = async (file: string, config: (port: number) => string): Promise<[number, number]> => {
          const port = await freePort();
          writeFileSync(join(dir, file), config(port));
          const child = start(0, 'haproxy', ['-f', join(dir, file), '-db']);
          cleanups.push(() => stop(child));
          await waitPort(port);
          return [port, child.pid!];
        };
        const [port, pid] = await haproxy('haproxy.cfg', (p) => haproxyConfig(p, backendPorts, false));
        add('HAProxy (1 thread, for scale)', `http://127.0.0.1:${port}/`, pid);
        // The same over HTTP/2 both ways (proto h2), for the h2c and gRPC scenarios asked for.
        const h2Loads = [...new Set(wanted.map((key) => scenarios[key]?.load).filter((l): l is 'h2c' | 'grpc' => l === 'h2c' || l === 'grpc'))];
        if (h2Loads.length > 0 && has('h2load')) {
          const [h2Port, h2Pid] = await haproxy('haproxy-h2.cfg', (p) => haproxyConfig(p, h2Ports, true));
          for (const l of h2Loads) {
            add(l === 'grpc' ? 'HAProxy: unary gRPC calls, h2c both ways (1 thread)' : 'HAProxy: h2c client to h2c backends (1 thread)', `http://127.0.0.1:${h2Port}${l === 'grpc' ? GRPC_PATH : '/'}`, h2Pid, l);
          }
        }
      } else {
        console.error('HAProxy not installed (apt-get install haproxy): no HAProxy row');
      }
    }
    for (const t of targets) await load(t.url, WARMUP, t.kind);
    for (let i = 0; i < ROUNDS; i++) {
      for (const t of targets) await round(t, DURATION);
      console.error(`round ${i + 1}/${ROUNDS} done`);
    }
    for (const t of targets) if (t.pid !== null) t.rssMiB = peakRssMiB(t.pid);
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
  const rows = targets.map(summarize);
  report(rows);
  if (args.json !== undefined) writeFileSync(args.json, JSON.stringify({ rig: rig(), rows }, null, 2));
}

/**
 * haproxyConfig: HAProxy doing what Fulcrum does in the scenarios
 * (round-robin, X-Forwarded-For, keep-alive); with `h2`, HTTP/2 to the
 * client and to the h2c backends (`proto h2` on both sides).
 */
function haproxyConfig(port: number, backendPorts: number[], h2: boolean): string {
  const proto = h2 ? ' proto h2' : '';
  return [
    'global', '  nbthread 1', '  maxconn 4096',
    'defaults', '  mode http', '  option http-keep-alive', '  option forwardfor',
    '  timeout connect 5s', '  timeout client 60s', '  timeout server 60s',
    'frontend fe', `  bind 127.0.0.1:${port}${proto}`, '  default_backend be',
    'backend be', '  balance roundrobin',
    ...backendPorts.map((p, i) => `  server s${i + 1} 127.0.0.1:${p}${proto}`),
    '',
  ].join('\n');
}

function rig(): Record<string, unknown> {
  return { tool: WRK ? 'wrk' : 'autocannon', connections: CONNECTIONS, rounds: ROUNDS, durationSeconds: DURATION, warmupSeconds: WARMUP, pinned: TASKSET, node: process.version };
}

function report(rows: Row[]): void {
  const r = rig();
  console.log(`\nload: ${r.tool}, ${CONNECTIONS} keep-alive connections, ${ROUNDS} rounds x ${DURATION}s after ${WARMUP}s warm-up; pinned: ${TASKSET ? 'proxy on CPU 0, backends + load on CPU 1' : 'no (taskset missing or one CPU)'}; ${process.version}\n`);
  const header = ['', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req (min-max)', 'peak RSS MiB', 'errors'];
  const lines = rows.map((x) => [
    x.name,
    x.rps.toFixed(0),
    x.p50.toFixed(2),
    x.p99.toFixed(2),
    x.cpuUsPerReq === null ? '-' : `${x.cpuUsPerReq.toFixed(1)} (${x.cpuSpread![0].toFixed(1)}-${x.cpuSpread![1].toFixed(1)})`,
    x.rssMiB === null ? '-' : x.rssMiB.toFixed(0),
    String(x.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(header));
  for (const l of lines) console.log(fmt(l));
  const direct = rows.find((x) => x.name.startsWith('direct'));
  const floor = rows.find((x) => x.name.startsWith('bare'));
  console.log('');
  for (const x of rows) {
    if (x === direct || x === floor) continue;
    const parts: string[] = [];
    if (direct !== undefined) parts.push(`${(x.rps / direct.rps * 100).toFixed(0)}% of direct throughput`);
    if (floor?.cpuUsPerReq != null && x.cpuUsPerReq !== null) parts.push(`${(x.cpuUsPerReq / floor.cpuUsPerReq).toFixed(2)}x the floor's CPU per request`);
    if (parts.length > 0) console.log(`${x.name}: ${parts.join(', ')}`);
  }
}

await main();
