/**
 * Tracing: what the request path asks (through RequestTracer) whether to
 * trace a request, and the owner of the SDK provider (provider.ts).
 *
 * A request is traced when `tracing.enabled` is on or when something
 * subscribes to `fulcrum:span`; otherwise `active` is false and the request
 * path does nothing more than read it (no parsing, no header changes, no
 * objects). The provider is built when first needed, and the SDK packages
 * are loaded then too (otel.ts), so a process that never traces pays
 * neither their start-up time nor their memory.
 *
 * Reload: a changed `tracing` section builds a new provider (a new exporter
 * with the new endpoint, headers and sampler); the old one is shut down,
 * which exports what it had queued. Spans of requests in flight at that
 * moment end on the old provider and are not exported.
 */
import type { Tracer } from '@opentelemetry/api';
import type { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { spanChannel } from '../core/events.js';
import { createProvider, otlpExporter, type DropCounter, type ExporterFactory, type TraceLog, type TracingConfig } from './provider.js';
import { RequestTrace, type TracedRequest } from './request-trace.js';

/** RequestTracer is all the request path sees of tracing. */
export interface RequestTracer {
  /** active: trace this request (tracing is on, or a `fulcrum:span` subscriber listens). */
  readonly active: boolean;
  /** start begins a request's server span (call only when `active`). */
  start(req: TracedRequest): RequestTrace;
}

/** How long close() waits for the last export (a hanging collector must not hold up shutdown). */
const CLOSE_WAIT_MS = 2000;

export class Tracing implements RequestTracer {
  #config: TracingConfig;
  #provider: BasicTracerProvider | null = null;
  #tracer: Tracer | null = null;

  constructor(
    config: TracingConfig,
    private readonly version: string,
    private readonly dropped: DropCounter,
    private readonly log: TraceLog,
    private readonly exporter: ExporterFactory = otlpExporter,
  ) {
    this.#config = config;
  }

  get active(): boolean {
    return this.#config.enabled || spanChannel.hasSubscribers;
  }

  /** config: the tracing section in force. */
  get config(): TracingConfig {
    return this.#config;
  }

  start(req: TracedRequest): RequestTrace {
    return new RequestTrace(this.#tracer ?? this.#makeTracer(), req, this.#config.sampleRatio);
  }

  #makeTracer(): Tracer {
    this.#provider = createProvider(this.#config, this.version, this.dropped, this.log, this.exporter);
    this.#tracer = this.#provider.getTracer('fulcrum', this.version);
    return this.#tracer;
  }

  /** reconfigure applies a reloaded tracing section; the same one changes nothing. */
  reconfigure(config: TracingConfig): void {
    if (JSON.stringify(config) === JSON.stringify(this.#config)) return;
    const old = this.#provider;
    this.#config = config;
    this.#provider = null;
    this.#tracer = null;
    if (old !== null) void old.shutdown().catch(() => { /* a failed last export is counted by the gate */ });
  }

  /** close exports what is queued, waiting at most CLOSE_WAIT_MS. */
  async close(): Promise<void> {
    const provider = this.#provider;
    this.#provider = null;
    this.#tracer = null;
    if (provider === null) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, CLOSE_WAIT_MS).unref(); });
    await Promise.race([provider.shutdown().catch(() => undefined), timeout]);
    clearTimeout(timer);
  }
}
