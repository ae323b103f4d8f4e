/**
 * What the state store adds to /status and to the JSON of /metrics. Read
 * from what the sync loop last read (at most one flush interval old): the
 * balancer's own endpoints never wait on the store.
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
    const backends = status.backends;
    if (Array.isArray(backends)) {
      for (const b of backends as Record<string, unknown>[]) {
        if (typeof b.url !== 'string') continue;
        const c = sync.clusterBackend(b.url);
        b.clusterRequests = c.requests;
        b.clusterFailures = c.failures;
        b.clusterResponses = { ...c.responses };
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
