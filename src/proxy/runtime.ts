/**
 * ProxyRuntime is everything the data path reads, derived from the config
 * once (and again on reload) so that per-request work is only lookups:
 * the current picker, the upstream pools, retry policy, limits, observers.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendPool } from '../backends/pool.js';
import type { PickContext, Picker, PickerFactory } from '../balancer/picker.js';
import type { FulcrumConfig } from '../config/schema.js';
import type { OutlierDetector } from '../health/passive.js';
import type { Logger } from '../observe/log.js';
import type { Metrics } from '../observe/metrics.js';
import type { ForwardOptions } from './headers.js';
import { TrustedProxies } from '../core/trusted-proxies.js';
import { RetryPolicy } from '../service/retry.js';
import type { UpstreamClients } from '../upstream/clients.js';

/** EWMA_DECAY weighs the latest latency sample against the running average (p2c). */
const EWMA_DECAY = 0.2;

/** QueuedExchange is a request waiting for a free connection slot. */
export interface QueuedExchange {
  readonly done: boolean;
  leaveQueue(): void;
}

/** ResponseHeadContext is what an onResponseHead hook may read about the exchange. */
export interface ResponseHeadContext {
  readonly backend: Backend | null;
  readonly cookie: string | undefined;
  readonly clientAddress: string;
  readonly tried: ReadonlySet<Backend> | undefined;
}

export interface RuntimeParts {
  config: FulcrumConfig;
  pool: BackendPool;
  factory: PickerFactory;
  upstream: UpstreamClients;
  outlier: OutlierDetector;
  metrics: Metrics;
  log: Logger;
  /** pickFilter wraps the policy's picker, e.g. for sticky sessions; identity by default. */
  wrapPicker?: (picker: Picker) => Picker;
  /** onDrained is called when a backend marked for removal has no request in flight. */
  onDrained?: (backend: Backend) => void;
}

export class ProxyRuntime {
  config: FulcrumConfig;
  readonly pool: BackendPool;
  factory: PickerFactory;
  picker: Picker;
  readonly upstream: UpstreamClients;
  readonly outlier: OutlierDetector;
  readonly metrics: Metrics;
  readonly log: Logger;
  retry: RetryPolicy;
  forward: ForwardOptions;
  /** draining: shutting down; answer with `Connection: close`. */
  draining = false;
  /** queue holds requests waiting for a backend below its connection limit (FIFO). */
  readonly queue: QueuedExchange[] = [];
  /** active counts proxied requests in flight, for graceful drain. */
  active = 0;
  /**
   * onResponseHead lets features add response headers (e.g. a sticky-session
   * cookie) to a proxied response: `headers` is the flat [name, value, ...]
   * list about to be written. null when no feature needs it.
   */
  onResponseHead: ((ctx: ResponseHeadContext, headers: string[]) => void) | null = null;
  #wrap: (picker: Picker) => Picker;
  readonly #onDrained: (backend: Backend) => void;

  constructor(parts: RuntimeParts) {
    this.config = parts.config;
    this.pool = parts.pool;
    this.factory = parts.factory;
    this.upstream = parts.upstream;
    this.outlier = parts.outlier;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.#wrap = parts.wrapPicker ?? ((p) => p);
    this.#onDrained = parts.onDrained ?? (() => undefined);
    this.retry = new RetryPolicy(parts.config.retries);
    this.forward = forwardOptions(parts.config);
    this.picker = this.#wrap(this.factory.build(this.pool.snapshot, this.config));
  }

  /** setPickerWrapper installs a wrapper around the policy's picker (sticky sessions). */
  setPickerWrapper(wrap: (picker: Picker) => Picker): void {
    this.#wrap = wrap;
    this.rebuildPicker();
  }

  /** rebuildPicker is called when pool membership or weights change, never per request. */
  rebuildPicker(): void {
    this.picker = this.#wrap(this.factory.build(this.pool.snapshot, this.config));
  }

  /** reconfigure swaps config-derived parts; in-flight requests keep what they captured. */
  reconfigure(config: FulcrumConfig, factory: PickerFactory): void {
    this.config = config;
    this.factory = factory;
    this.retry = new RetryPolicy(config.retries);
    this.forward = forwardOptions(config);
    this.rebuildPicker();
  }

  pick(ctx: PickContext): Backend | undefined {
    return this.picker.pick(ctx);
  }

  observeLatency(backend: Backend, ms: number): void {
    const s = backend.state;
    s.latencyEwma = s.latencyEwma === 0 ? ms : s.latencyEwma + EWMA_DECAY * (ms - s.latencyEwma);
  }

  /** isFull: the backend is at its connection limit (per-backend maxConnections, else limits.maxConnectionsPerBackend). */
  isFull(backend: Backend): boolean {
    const max = backend.config.maxConnections ?? this.config.limits.maxConnectionsPerBackend;
    return max > 0 && backend.state.inflight >= max;
  }

  attemptEnded(backend: Backend): void {
    if (backend.removeWhenDrained && backend.state.inflight === 0) this.#onDrained(backend);
    if (this.queue.length > 0) queueMicrotask(() => this.#wakeOne());
  }

  /** #wakeOne gives a freed slot to the request that has waited longest. */
  #wakeOne(): void {
    while (this.queue.length > 0) {
      const next = this.queue.shift()!;
      if (!next.done) {
        next.leaveQueue();
        return;
      }
    }
  }
}

function forwardOptions(config: FulcrumConfig): ForwardOptions {
  return {
    trusted: new TrustedProxies(config.trustedProxies),
    preserveHost: config.preserveHost,
  };
}
