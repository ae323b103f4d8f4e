/**
 * `npm run bench:instructions`: the balancer's user-space instructions per
 * proxied request, counted by valgrind's callgrind (Debian package
 * `valgrind`). Unlike CPU time, an instruction count hardly depends on what
 * else the machine is doing, so it can tell apart changes of a few percent
 * on a noisy VM, where `npm run bench` cannot. It does not see the kernel's
 * work (the socket system calls, ~40% of the CPU time per request here), so
 * it complements `npm run bench`; it does not replace it.
 *
 * Method: the balancer (a scenario's config, `default` unless told) runs
 * under callgrind twice, serving first B requests and then B + N, from 16
 * keep-alive connections (the fixed-count client below, in this process).
 * Per function, the difference between the two runs divided by N is its
 * cost per request in steady state: start-up and warm-up cancel out. What
 * V8's compilers and parser did (which varies from run to run with JIT
 * timing) is reported apart and left out of the total. Every response must
 * be a 200. Compiled JavaScript functions are named from the map node
 * writes with `--perf-basic-prof` ("JS *name file:line", "*" when
 * optimized); V8's built-ins and Node's C++ are named by callgrind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, waitPort } from './net.js';
import { scenarios } from './scenarios.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(here, '../src/cli.js');
const BACKEND = join(here, 'backend-server.js');

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '10000' },
    base: { type: 'string', default: '2000' },
    scenario: { type: 'string', default: 'default' },
    top: { type: 'string', default: '15' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`Usage: npm run bench:instructions -- [options]
  --requests N    requests measured: the difference between the two runs (default 10000)
  --base B        requests in the first run (default 2000)
  --scenario S    the balancer's config, a scenario of npm run bench (default "default")
  --top K         functions listed (default 15)
Needs valgrind (apt-get install valgrind). Takes a few minutes: callgrind runs the balancer ~50x slower.`);
  process.exit(0);
}
const N = Number(args.requests);
const BASE = Number(args.base);
const CONNECTIONS = 16;

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
if (!has('valgrind') || !has('callgrind_annotate')) {
  console.error('valgrind is missing: run "apt-get install -y valgrind"');
  process.exit(1);
}
const scenario = scenarios[args.scenario];
if (scenario === undefined || scenario.setup !== undefined || scenario.cpus !== undefined) {
  console.error(`--scenario: expected one of the single-process scenarios without set-up (e.g. default, no-access-log, node-http), got ${JSON.stringify(args.scenario)}`);
  process.exit(2);
}

/** drive sends `total` GET requests over CONNECTIONS keep-alive connections, one at a time on each, and counts the 200s. */
function drive(port: number, total: number): Promise<number> {
  // The scenario's own target when it has one (the routing scenarios match on the path).
  const target = scenario!.url === undefined ? '/' : new URL(scenario!.url(port)).pathname;
  const request = Buffer.from(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: fulcrum-bench\r\nAccept: */*\r\n\r\n`);
  let sent = 0;
  let answered = 0;
  let ok = 0;
  return new Promise((resolve, reject) => {
    for (let c = 0; c < CONNECTIONS; c++) {
      const socket = net.connect(port, '127.0.0.1');
      let pending = '';
      const next = (): void => {
        if (sent < total) {
          sent++;
          socket.write(request);
        } else {
          socket.end();
        }
      };
      socket.setEncoding('latin1');
      socket.on('connect', next);
      socket.on('error', reject);
      socket.on('data', (text: string) => {
        pending += text;
        for (;;) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          const length = /\r\ncontent-length: *(\d+)/i.exec(pending.slice(0, end + 2));
          const size = end + 4 + Number(length?.[1] ?? 0);
          if (pending.length < size) return;
          if (pending.startsWith('HTTP/1.1 200 ')) ok++;
          pending = pending.slice(size);
          if (++answered === total) resolve(ok);
          else next();
        }
      });
    }
  });
}

/** jitNames reads the map node writes with --perf-basic-prof: start address, size and name of each piece of generated code. */
function jitNames(pid: number): (address: number) => string | undefined {
  const file = `/tmp/perf-${pid}.map`;
  const entries: [number, number, string][] = [];
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
      if (m !== null) entries.push([parseInt(m[1]!, 16), parseInt(m[2]!, 16), m[3]!.replace(/file:\/\/\S*?\/dist\//, '')]);
    }
    rmSync(file, { force: true });
  } catch { /* no map: addresses stay unnamed */ }
  entries.sort((a, b) => a[0] - b[0]);
  return (address) => {
    let lo = 0;
    let hi = entries.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [start, size, name] = entries[mid]!;
      if (address < start) hi = mid - 1;
      else if (address >= start + size) lo = mid + 1;
      else return name;
    }
    return undefined;
  };
}

/** countPerFunction parses callgrind_annotate's flat profile: instructions by function, generated code named from node's map. */
function countPerFunction(file: string, nameOf: (address: number) => string | undefined): Map<string, number> {
  const out = spawnSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }).stdout;
  const counts = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/.exec(line);
    if (m === null || line.includes('PROGRAM TOTALS')) continue;
    let name = m[2]!.replace(/ \[[^\]]*\]$/, '').replace(/^\?\?\?:/, '');
    if (/^0x[0-9a-f]+$/.test(name)) name = `JS ${nameOf(parseInt(name, 16)) ?? name}`;
    counts.set(name, (counts.get(name) ?? 0) + Number(m[1]!.replaceAll(',', '')));
  }
  return counts;
}

/** V8's compilers and parser: their work depends on JIT timing, not on the requests. */
const COMPILE = /compiler::|interpreter::|maglev|Scanner|Parser|Zone|_Rb_tree/i;

/** measure runs the balancer under callgrind for `requests` requests and returns its counts by function. */
async function measure(dir: string, configFile: string, port: number, requests: number): Promise<Map<string, number>> {
  const out = join(dir, `callgrind.${requests}`);
  // --perf-basic-prof: node writes where each compiled JavaScript function lies, so that they can be named.
  const child: ChildProcess = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--perf-basic-prof', CLI, '--config', configFile], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    // Twenty minutes: on a loaded 2-core machine, start-up alone under callgrind has taken 215 s to over ten minutes.
    await waitPort(port, 1_200_000);
    const ok = await drive(port, requests);
    if (ok !== requests) throw new Error(`${requests - ok} of ${requests} responses were not 200`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  return countPerFunction(out, jitNames(child.pid!));
}

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-instructions-'));
const backendPorts = [await freePort(), await freePort()];
const backend = spawn(process.execPath, [BACKEND, ...backendPorts.map(String)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
try {
  await Promise.all(backendPorts.map((p) => waitPort(p)));
  const port = await freePort();
  const config = scenario.config({ port, targets: backendPorts.map((p) => `http://127.0.0.1:${p}`) });
  const configFile = join(dir, 'fulcrum.json');
  writeFileSync(configFile, JSON.stringify(config));
  console.log(`scenario: ${scenario.title}; ${BASE} then ${BASE + N} requests under callgrind, ${CONNECTIONS} keep-alive connections; ${process.version}`);
  const first = await measure(dir, configFile, port, BASE);
  const second = await measure(dir, configFile, port, BASE + N);
  const perRequest: [string, number][] = [];
  for (const name of new Set([...first.keys(), ...second.keys()])) perRequest.push([name, ((second.get(name) ?? 0) - (first.get(name) ?? 0)) / N]);
  const compile = perRequest.filter(([name]) => COMPILE.test(name)).reduce((sum, [, n]) => sum + n, 0);
  const steady = perRequest.filter(([name]) => !COMPILE.test(name));
  const total = steady.reduce((sum, [, n]) => sum + n, 0);
  console.log(`\ninstructions per request: ${Math.round(total)} (V8 compile work left out: ${Math.round(compile)})\n`);
  for (const [name, n] of steady.sort((a, b) => b[1] - a[1]).slice(0, Number(args.top))) console.log(`${String(Math.round(n)).padStart(8)}  ${name.slice(0, 110)}`);
} finally {
  backend.kill();
  rmSync(dir, { recursive: true, force: true });
}
