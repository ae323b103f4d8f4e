/**
 * `node dist/bench/upstream-client.js`: the upstream clients alone, without
 * the rest of the proxy. A process dispatches small GETs to a benchmark
 * backend with 64 requests in flight, through Fulcrum's HTTP/1.1 client
 * (H1Pool) or undici's Pool, with the same minimal handler (it converts the
 * response headers to strings, as the proxy does), and reports its CPU time
 * per request. The two run alternately, each in a fresh process pinned to
 * CPU 0 (the backend on CPU 1) when `taskset` exists; we report medians.
 *
 * Usage: node dist/bench/upstream-client.js [--rounds 5] [--duration 3] [--connections 64]
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { UpstreamDispatcher, UpstreamHandler } from '../src/upstream/dispatch.js';
import { H1Pool } from '../src/upstream/h1-client.js';
import { latin1 } from '../src/proxy/headers.js';
import { freePort } from './net.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    child: { type: 'string' },
    port: { type: 'string' },
  },
});

interface Sample { client: string; rps: number; cpuUsPerReq: number; errors: number }

/** measure runs in the child: dispatch in a loop, then report CPU time per completed request. */
async function measure(client: string, port: number, seconds: number, concurrency: number): Promise<Sample> {
  const origin = `http://127.0.0.1:${port}`;
  const pool: UpstreamDispatcher = client === 'fulcrum'
    ? new H1Pool(origin, { connectTimeout: 5_000, headersTimeout: 60_000, bodyTimeout: 60_000 })
    : new Pool(origin, { pipelining: 1, keepAliveTimeout: 4_000, headersTimeout: 60_000, bodyTimeout: 60_000, maxHeaderSize: 64 * 1024, strictContentLength: true }) as unknown as UpstreamDispatcher;
  // The headers the proxy sends for a small GET.
  const headers = ['host', `127.0.0.1:${port}`, 'user-agent', 'wrk', 'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'http', 'x-forwarded-host', `127.0.0.1:${port}`];
  let completed = 0;
  let errors = 0;
  let running = true;
  const loop = (): void => {
    if (!running) return;
    const handler: UpstreamHandler = {
      onConnect: () => undefined,
      onHeaders: (_status, raw) => { for (const b of raw) latin1(b); return true; },
      onData: () => true,
      onComplete: () => { completed++; loop(); },
      onError: () => { errors++; loop(); },
    };
    pool.dispatch({ path: '/', method: 'GET', headers: headers.slice(), body: null }, handler);
  };
  for (let i = 0; i < concurrency; i++) loop();
  await new Promise((r) => setTimeout(r, 1_000)); // warm-up
  const cpu0 = process.cpuUsage();
  const n0 = completed;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1_000));
  const cpu = process.cpuUsage(cpu0);
  const n = completed - n0;
  const ms = performance.now() - t0;
  const failed = errors;
  running = false;
  await pool.destroy(); // (fails the requests still in flight: not counted)
  return { client, rps: n / ms * 1_000, cpuUsPerReq: (cpu.user + cpu.system) / n, errors: failed };
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const TASKSET = has('taskset') && (await import('node:os')).cpus().length >= 2;
const pinned = (cpu: number, cmd: string, cmdArgs: string[]): [string, string[]] => (TASKSET ? ['taskset', ['-c', String(cpu), cmd, ...cmdArgs]] : [cmd, cmdArgs]);
const here = fileURLToPath(new URL('.', import.meta.url));
const self = fileURLToPath(import.meta.url);

function runChild(client: string, port: number): Promise<Sample> {
  const [cmd, cmdArgs] = pinned(0, process.execPath, [self, '--child', client, '--port', String(port), '--duration', args.duration, '--connections', args.connections]);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Sample) : reject(new Error(`${client} run exited ${code}`))));
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

if (args.child !== undefined) {
  const sample = await measure(args.child, Number(args.port), Number(args.duration), Number(args.connections));
  process.stdout.write(JSON.stringify(sample));
} else {
  const port = await freePort();
  const [cmd, cmdArgs] = pinned(1, process.execPath, [`${here}backend-server.js`, String(port)]);
  const backend = spawn(cmd, cmdArgs, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise((r) => backend.once('message', r));
  const samples: Sample[] = [];
  try {
    for (let i = 0; i < Number(args.rounds); i++) {
      for (const client of i % 2 === 0 ? ['fulcrum', 'undici'] : ['undici', 'fulcrum']) samples.push(await runChild(client, port));
    }
  } finally {
    backend.kill();
  }
  console.log(`\n${args.connections} requests in flight, ${args.rounds} rounds x ${args.duration}s per client, alternating; pinned: ${TASKSET ? 'client on CPU 0, backend on CPU 1' : 'no'}; ${process.version}\n`);
  for (const client of ['fulcrum', 'undici']) {
    const mine = samples.filter((s) => s.client === client);
    const cpus = mine.map((s) => s.cpuUsPerReq);
    console.log(`${client.padEnd(8)} ${median(mine.map((s) => s.rps)).toFixed(0).padStart(6)} req/s   ${median(cpus).toFixed(1)} CPU-µs/req (${Math.min(...cpus).toFixed(1)}-${Math.max(...cpus).toFixed(1)})   errors ${mine.reduce((a, s) => a + s.errors, 0)}`);
  }
}
