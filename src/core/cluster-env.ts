/**
 * What the primary hands every worker it forks, through the environment
 * (it must be there before the worker builds its balancer, which happens
 * synchronously at start): the worker's slot number, and the secret that
 * signs sticky-session cookies when the config sets none, so that a cookie
 * issued by one worker is honoured by every other.
 *
 * Nothing here is read unless the process is a cluster worker started by
 * Fulcrum's primary: a plain balancer (or a library user's own cluster
 * worker) behaves as a single process.
 */
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';

/** WORKER_ENV holds the worker's slot, 1..N (stable across restarts of that slot). */
export const WORKER_ENV = 'FULCRUM_WORKER';
/** SECRET_ENV holds the cluster's sticky-session secret, hex. */
export const SECRET_ENV = 'FULCRUM_CLUSTER_SECRET';

/** isFulcrumWorker: this process is a worker forked by Fulcrum's primary. */
export function isFulcrumWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined && process.env[SECRET_ENV] !== undefined;
}

/** workerSlot is this worker's slot (1..N), or null outside a Fulcrum cluster. */
export function workerSlot(): number | null {
  if (!isFulcrumWorker()) return null;
  const n = Number(process.env[WORKER_ENV]);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** clusterStickySecret is the secret shared by every worker, or null outside a Fulcrum cluster. */
export function clusterStickySecret(): Buffer | null {
  if (!isFulcrumWorker()) return null;
  const hex = process.env[SECRET_ENV]!;
  return /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : null;
}

/** workerCount resolves the `workers` setting: 'auto' is one worker per CPU the process may use. */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers;
}
