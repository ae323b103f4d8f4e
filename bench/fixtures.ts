/** Benchmark fixtures: a throwaway redis-server and a self-signed certificate. */
import { spawn, spawnSync } from 'node:child_process';
import { freePort, waitPort } from './net.js';
import { join } from 'node:path';

/** startBenchRedis runs redis-server on a free port (pinned with the backends, on CPU 1). */
export async function startBenchRedis(dir: string): Promise<Record<string, unknown>> {
  const port = await freePort();
  const child = spawn('taskset', ['-c', '1', 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  await waitPort(port, 5000);
  return {
    redisUrl: `redis://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

/** makeCertificate writes a self-signed certificate for 127.0.0.1 with openssl. */
export async function makeCertificate(dir: string): Promise<Record<string, unknown>> {
  const cert = join(dir, 'bench.crt');
  const key = join(dir, 'bench.key');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('openssl failed to make the benchmark certificate');
  return { cert, key };
}
