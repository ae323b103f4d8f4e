/**
 * installStateStore attaches the state store to a balancer: the memory
 * store by default (one instance, nothing shared), or Redis with
 * `state.store: redis`, which shares counters, health checks and run-time
 * backend changes of every service between instances and keeps them across
 * restarts. In a
 * worker of a `workers: N` cluster the memory store is the primary's,
 * reached over IPC (ipc.ts), and shared by the workers in the same way.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { BalancerHost } from '../app/host.js';
import { BackendSharing } from './backend-share.js';
import { SplitSharing } from './split-share.js';
import { CounterCollector } from './counters.js';
import { HealthSharing } from './health-share.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import { describeTarget, redisTarget } from './redis-client.js';
import { installStatus } from './status.js';
import { IpcStore } from './ipc.js';
import { isFulcrumWorker } from '../core/cluster-env.js';
import { registerClusterMetrics } from './cluster-metrics.js';
import type { StateStore } from './store.js';
import { StateSync } from './sync.js';

/** newInstanceId: host, process and a random part (several instances may share a process, as in tests). */
export function newInstanceId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** The store of each balancer, for the features built on it (ACME keeps its account, certificates and lease there). */
const stores = new WeakMap<BalancerHost, StateStore>();

/** stateStoreOf returns the balancer's state store once installStateStore has run. */
export function stateStoreOf(balancer: BalancerHost): StateStore | undefined {
  return stores.get(balancer);
}

export function installStateStore(balancer: BalancerHost): void {
  const config = balancer.config.state;
  const log = balancer.log.child({ component: 'state' });
  const instanceId = newInstanceId();
  // A worker of a `workers: N` cluster shares the memory store held by its primary, over IPC.
  const ipc = config.store === 'memory' && isFulcrumWorker();
  const shared = config.store === 'redis' || ipc;
  const target = config.store === 'redis' ? redisTarget(config.redis) : null;
  const store: StateStore = target !== null
    ? new RedisStore({ target, keyPrefix: config.redis.keyPrefix, instanceId })
    : ipc ? new IpcStore(instanceId) : new MemoryStore(instanceId);
  stores.set(balancer, store);
  let sync: StateSync | null = null;
  const health = shared ? new HealthSharing(balancer, store, () => sync?.degraded ?? false) : null;
  const backends = shared ? new BackendSharing(balancer, store, log) : null;
  // Split weights set at run time (a round reads nothing while no route has a split).
  const splits = shared ? new SplitSharing(balancer, store, log) : null;
  sync = new StateSync({
    store,
    collector: new CounterCollector(balancer.metrics, {
      names: () => balancer.serviceNames(),
      pool: (service) => balancer.serviceHandle(service)?.pool,
    }),
    flushInterval: config.flushInterval,
    log,
    localTotal: () => balancer.metrics.totalRequests,
    health,
    backends,
  });
  health?.install();
  backends?.install();
  splits?.install();
  installStatus(balancer, sync, store);
  registerClusterMetrics(balancer, sync, store.type);
  if (target !== null) log.info({ redis: describeTarget(target), mode: target.mode, keyPrefix: config.redis.keyPrefix, instance: instanceId }, 'state store: redis');
  sync.start();

  balancer.addHook('reload', (next, previous) => {
    if (JSON.stringify(next.state) !== JSON.stringify(previous.state)) log.warn('state settings changed in the config; they take effect at the next restart');
  });
  const running = sync;
  // With Redis, an instance that has not read the shared state (health, run-time backends) would route on its own guess.
  if (config.store === 'redis') balancer.addHook('ready', () => (running.synced ? null : 'waiting for the first state sync with redis'));
  balancer.addHook('close', async () => {
    health?.uninstall();
    backends?.uninstall();
    splits?.uninstall();
    await running.close();
  });
}
