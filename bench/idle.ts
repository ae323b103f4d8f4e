/**
 * `npm run bench:idle`: how much memory the balancer needs to hold many idle
 * keep-alive client connections. A balancer process (its file limit raised
 * with `ulimit -n`) gets N connections, each of which makes one request and
 * then stays open, idle; we report the balancer's RSS before and after.
 *
 * Usage: node dist/bench/idle.js [--connections 10000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, waitPort } from './net.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(here, '../src/cli.js');
const BACKEND = join(here, 'backend-server.js');
const { values } = parseArgs({ options: { connections: { type: 'string', default: '10000' }, client: { type: 'boolean', default: false }, port: { type: 'string' } } });
const N = Number(values.connections);

/** In client mode (a child with its own file limit), open N connections, one request each, and hold them. */
async function client(port: number): Promise<void> {
  const sockets: net.Socket[] = [];
  let answered = 0;
  const open = (): Promise<void> => new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.once('error', reject);
    s.once('connect', () => s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n'));
    s.once('data', () => { answered++; resolve(); });
    sockets.push(s);
  });
  for (let i = 0; i < N; i += 200) await Promise.all(Array.from({ length: Math.min(200, N - i) }, open));
  process.send?.({ answered });
  await new Promise(() => undefined); // hold until killed
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function main(): Promise<void> {
  const limit = `ulimit -n ${N + 2048}`;
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-idle-'));
  const [bp1, bp2, port] = [await freePort(), await freePort(), await freePort()];
  const backends = spawn(process.execPath, [BACKEND, String(bp1), String(bp2)], { stdio: 'ignore' });
  const file = join(dir, 'idle.json');
  writeFileSync(file, JSON.stringify({
    listen: { host: '127.0.0.1', port }, backends: [`http://127.0.0.1:${bp1}`, `http://127.0.0.1:${bp2}`],
    logLevel: 'warn', accessLog: false, limits: { keepAliveTimeout: '120s', headersTimeout: '120s' },
  }));
  const balancer = spawn('sh', ['-c', `${limit} && exec "${process.execPath}" "${CLI}" -c "${file}"`], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await waitPort(bp1);
    await waitPort(port);
    await new Promise((r) => setTimeout(r, 500));
    const before = rssMiB(balancer.pid!);
    const started = Date.now();
    const child = spawn('sh', ['-c', `${limit} && exec "${process.execPath}" "${fileURLToPath(import.meta.url)}" --client --port ${port} --connections ${N}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const result = await new Promise<{ answered: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { answered: number }));
      child.once('exit', (code) => reject(new Error(`client exited ${code}`)));
    });
    await new Promise((r) => setTimeout(r, 2000));
    const held = rssMiB(balancer.pid!);
    console.log(`\n${result.answered} keep-alive connections opened in ${((Date.now() - started) / 1000).toFixed(1)}s, one request each, then held idle`);
    console.log(`balancer RSS: ${before.toFixed(0)} MiB before, ${held.toFixed(0)} MiB holding them (${((held - before) * 1024 / N).toFixed(1)} KiB per connection)`);
    child.kill('SIGKILL');
  } finally {
    balancer.kill('SIGKILL');
    backends.kill('SIGKILL');
  }
}

if (values.client) await client(Number(values.port));
else await main();
