/**
 * ProxyContext is what the request path reads that belongs to the balancer
 * rather than to one service: the listener-level settings (limits, the
 * access log switch, forwarded headers), the services and the route table, the
 * counters of requests and tunnels in flight, and whether the balancer is
 * draining. Derived from the config once, and again on reload, so that
 * per-request work is lookups.
 */
import type { Duplex } from 'node:stream';
import type { FulcrumConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { ServiceRegistry } from '../service/registry.js';
import type { RouteTable } from '../routing/table.js';
import { TrustedProxies } from '../core/trusted-proxies.js';
import type { ForwardOptions } from './headers.js';
import { RequestIds } from '../trace/request-id.js';
import type { RequestTracer } from '../trace/tracer.js';

/** ProxySettings is the part of the config the request path reads outside any service. */
export type ProxySettings = Pick<FulcrumConfig, 'limits' | 'accessLog' | 'preserveHost' | 'trustedProxies' | 'requestId'>;

/** TunnelSet holds the client sockets of open tunnels, so that shutdown can close them last. */
export class TunnelSet {
  readonly sockets = new Set<Duplex>();

  get size(): number {
    return this.sockets.size;
  }

  closeAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

export class ProxyContext {
  settings: ProxySettings;
  forward: ForwardOptions;
  /** requestIds: the request id policy, or null when `requestId` is not configured (then nothing is done). */
  requestIds: RequestIds | null;
  /** draining: shutting down; answer with `Connection: close`. */
  draining = false;
  /** active counts proxied requests in flight (not open tunnels), for graceful drain. */
  active = 0;
  readonly tunnels = new TunnelSet();

  constructor(
    settings: ProxySettings,
    readonly services: ServiceRegistry,
    /** routes: the route table in force, replaced whole on reload. */
    public routes: RouteTable,
    readonly metrics: Metrics,
    readonly log: Logger,
    /** tracing: asked per request whether to trace it (trace/tracer.ts); inactive, it costs one read. */
    readonly tracing: RequestTracer,
  ) {
    this.settings = settings;
    this.forward = forwardOptions(settings);
    this.requestIds = settings.requestId === undefined ? null : new RequestIds(settings.requestId);
  }

  /** limits are the listener limits in force (the listeners read them through this, so that a reload applies). */
  get limits(): ProxySettings['limits'] {
    return this.settings.limits;
  }

  reconfigure(settings: ProxySettings): void {
    const ids = settings.requestId;
    if (JSON.stringify(ids) !== JSON.stringify(this.settings.requestId)) this.requestIds = ids === undefined ? null : new RequestIds(ids);
    this.settings = settings;
    this.forward = forwardOptions(settings);
  }
}

function forwardOptions(settings: ProxySettings): ForwardOptions {
  return { trusted: new TrustedProxies(settings.trustedProxies), preserveHost: settings.preserveHost };
}
