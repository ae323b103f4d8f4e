/**
 * The worker's side of a `workers: N` cluster: a balancer like any other
 * (its listeners share the primary's sockets through node:cluster, its
 * state store talks to the primary: src/state/ipc.ts), plus the control
 * messages: tell the primary when it serves, drain and exit 0 when asked
 * to shut down, reload when asked and answer with the result.
 *
 * Signals sent to the worker itself act as in a single process (first
 * SIGTERM/SIGINT drains, a second exits at once, SIGHUP reloads): Ctrl-C in
 * a terminal signals the primary and every worker together, and the
 * primary's shutdown message then finds the worker already draining.
 */
import type { BalancerHost, ReloadResult } from '../app/host.js';
import type { Logger } from '../observe/log.js';
import { isTagged } from '../state/ipc.js';
import { workerSlot } from '../core/cluster-env.js';
import { AggregatorRegistry } from 'prom-client';
import type { MetricsRequestMessage, MetricsResultMessage, ReadyMessage, ReloadAllResultMessage, ReloadedMessage, ReloadMessage, ReloadRequestMessage } from './protocol.js';

/** METRICS_TIMEOUT_MS bounds how long a Prometheus scrape waits for the other workers' metrics. */
const METRICS_TIMEOUT_MS = 6_000;

/** CLUSTER_RELOAD_TIMEOUT_MS bounds how long an admin reload waits for the primary's combined answer. */
const CLUSTER_RELOAD_TIMEOUT_MS = 15_000;

/** WorkerReload reloads the config file; null when there is none. */
export type WorkerReload = () => Promise<ReloadResult | null>;

/** serveAsWorker runs a listening balancer as a cluster worker until it is told (or signalled) to stop. */
export function serveAsWorker(balancer: BalancerHost, reload: WorkerReload): void {
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    balancer.close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`fulcrum worker ${process.pid}: error while stopping: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      process.stderr.write(`fulcrum worker ${process.pid}: second ${signal}, exiting now\n`);
      process.exit(1);
    }
    stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => { void reload(); });

  // POST /admin/reload on any worker reloads every worker, through the primary.
  const pendingReloads = new Map<number, (result: ReloadResult) => void>();
  let reloadSeq = 0;
  balancer.addComponent({
    name: 'cluster',
    reloadEverywhere: () => new Promise<ReloadResult>((resolve) => {
      const id = ++reloadSeq;
      const timer = setTimeout(() => {
        pendingReloads.delete(id);
        resolve(failed('the cluster primary did not answer the reload in time'));
      }, CLUSTER_RELOAD_TIMEOUT_MS);
      pendingReloads.set(id, (result) => { clearTimeout(timer); resolve(result); });
      send({ fulcrum: 'reload-request', id } satisfies ReloadRequestMessage);
    }),
  });

  // Prometheus scrapes combine every worker's metrics: the primary asks each worker (prom-client's
  // AggregatorRegistry answers for this worker's registry), sums them and sends the text back.
  new AggregatorRegistry(); // installs this worker's answering listener
  AggregatorRegistry.setRegistries([balancer.metrics.registry]);
  const pendingMetrics = new Map<number, (result: MetricsResultMessage['result']) => void>();
  let metricsSeq = 0;
  balancer.metrics.prometheusSource = () => new Promise((resolve) => {
    const id = ++metricsSeq;
    const timer = setTimeout(() => { pendingMetrics.delete(id); resolve(null); }, METRICS_TIMEOUT_MS);
    pendingMetrics.set(id, (result) => { clearTimeout(timer); resolve(result); });
    send({ fulcrum: 'metrics-request', id } satisfies MetricsRequestMessage);
  });

  process.on('message', (message: unknown) => {
    if (!isTagged(message)) return;
    if (message.fulcrum === 'metrics-result') {
      const { id, result } = message as MetricsResultMessage;
      const done = pendingMetrics.get(id);
      pendingMetrics.delete(id);
      done?.(result);
      return;
    }
    if (message.fulcrum === 'shutdown') stop();
    else if (message.fulcrum === 'reload') void answerReload(balancer, (message as ReloadMessage).id, reload);
    else if (message.fulcrum === 'reload-all-result') {
      const { id, result } = message as ReloadAllResultMessage;
      const done = pendingReloads.get(id);
      pendingReloads.delete(id);
      done?.(result);
    }
  });
  send({ fulcrum: 'ready' } satisfies ReadyMessage);
}

async function answerReload(balancer: BalancerHost, id: number, reload: WorkerReload): Promise<void> {
  let result: ReloadResult;
  try {
    result = await reload() ?? failed('no config file to reload');
  } catch (err) {
    balancer.log.error({ err }, 'reload failed');
    result = failed((err as Error).message);
  }
  send({ fulcrum: 'reloaded', id, result } satisfies ReloadedMessage);
}

function failed(error: string): ReloadResult {
  return { ok: false, error, added: [], removed: [], updated: [], at: new Date().toISOString() };
}

function send(message: unknown): void {
  if (process.send !== undefined && process.connected) process.send(message, undefined, {}, () => undefined);
}

/** workerLogger adds the worker's slot to every line it logs (the pid is there already). */
export function workerLogger(logger: Logger): Logger {
  const slot = workerSlot();
  return slot === null ? logger : logger.child({ worker: slot });
}
