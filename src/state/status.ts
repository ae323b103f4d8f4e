/**
 * What the state store adds to /status and to the JSON of /metrics. Read
 * from what the sync loop last read (at most one flush interval old): the
 * balancer's own endpoints never wait on the store. Each backend's cluster
 * counts are its service's: two services with the same backend URL are
 * counted apart.
 */
import type { BalancerHost } from '../app/host.js';
import type { StoreTopology, StoreType } from './store.js';
import type { StateSync } from './sync.js';

export function installStatus(balancer: BalancerHost, sync: StateSync, store: { readonly type: StoreType; readonly instanceId: string; topology?(): StoreTopology }): void {
  balancer.addHook('status', (status) => {
    status.instance = { id: store.instanceId, totalRequests: balancer.metrics.totalRequests };
    status.cluster = {
      totalRequests: sync.clusterTotal,
      instances: sync.instances.map((i) => ({ id: i.id, lastSeen: new Date(i.lastSeen).toISOString() })),
    };
    // The top-level list names each backend's service; each service's own list is that service's.
    addClusterCounts(sync, status.backends, (b) => (typeof b.service === 'string' ? b.service : balancer.defaultService));
    const services = status.services;
    if (typeof services === 'object' && services !== null) {
      for (const [name, service] of Object.entries(services as Record<string, unknown>)) {
        if (typeof service === 'object' && service !== null) addClusterCounts(sync, (service as Record<string, unknown>).backends, () => name);
      }
    }
    const since = sync.degradedSince;
    status.store = {
      type: store.type,
      ...store.topology?.(),
      connected: sync.connected,
      degradedSince: since === null ? null : new Date(since).toISOString(),
      unflushedRequests: sync.unflushedRequests,
    };
  });
  balancer.metrics.extraJson.push(() => ({ cluster_total_requests: sync.clusterTotal }));
}

/** addClusterCounts adds the cluster counters to each backend of a /status list, as counted for its service. */
function addClusterCounts(sync: StateSync, list: unknown, serviceOf: (b: Record<string, unknown>) => string): void {
  if (!Array.isArray(list)) return;
  for (const b of list as Record<string, unknown>[]) {
    if (typeof b.url !== 'string') continue;
    const c = sync.clusterBackend(serviceOf(b), b.url);
    b.clusterRequests = c.requests;
    b.clusterFailures = c.failures;
    b.clusterResponses = { ...c.responses };
  }
}
