/** Test helpers for the real `fulcrum` command run as a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { get, waitFor } from './balancer.js';

/** CLI is the built command (dist/src/cli.js), whatever the working directory. */
export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface CliProcess {
  readonly child: ChildProcess;
  /** output is everything written to stdout and stderr so far. */
  output(): string;
}

/** startCli runs `fulcrum <args>`, collecting its output. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = process.env): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  return { child, output: () => out };
}

/** waitServing waits until `base` answers /healthz at all (any status: the listener is up). */
export async function waitServing(base: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => {
    try { await get(`${base}/healthz`); return true; } catch { return false; }
  }, timeoutMs, 50);
}
