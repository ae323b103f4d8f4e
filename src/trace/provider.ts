/**
 * The OpenTelemetry SDK side of tracing: a BasicTracerProvider that
 * records every span it is asked for (whether a request is sampled, by its
 * client's flag or at `sampleRatio`, is decided before: request-trace.ts),
 * with two span processors:
 *
 *   - the channel processor, which publishes each finished span on
 *     `fulcrum:span` when someone listens (span-data.ts);
 *   - when `tracing.enabled`, a BatchSpanProcessor over the OTLP/HTTP
 *     exporter (JSON), behind a gate that counts what is dropped.
 *
 * Export never waits on the request path: spans are queued in memory and
 * sent in batches by a timer. When the collector is down, slow or hangs,
 * the exporter's timeout ends each export, its spans are counted as
 * dropped (`fulcrum_tracing_dropped_spans_total`), and the queue, bounded by
 * `batch.maxQueueSize`, drops (and counts) new spans rather than grow. The
 * first drop of an outage is logged; the next after an export succeeds again.
 */
import type { Attributes, Context } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import type { BasicTracerProvider, BatchSpanProcessor, ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { otelCore, otelExporter, otelResources, otelSdk } from './otel.js';
import type { FulcrumConfig } from '../config/schema.js';
import { spanChannel } from '../core/events.js';
import { spanEvent } from './span-data.js';

export type TracingConfig = FulcrumConfig['tracing'];

/** TraceLog: where tracing reports trouble (the balancer's logger fits). */
export interface TraceLog {
  warn(fields: object, message: string): void;
}

/** DropCounter is told how many spans were dropped (the metric's counter). */
export type DropCounter = (count: number) => void;

/** ChannelProcessor publishes every finished span on `fulcrum:span`, when it has subscribers. */
class ChannelProcessor implements SpanProcessor {
  onStart(_span: Span, _parent: Context): void { /* only finished spans are published */ }

  onEnd(span: ReadableSpan): void {
    if (spanChannel.hasSubscribers) spanChannel.publish(spanEvent(span));
  }

  forceFlush(): Promise<void> { return Promise.resolve(); }
  shutdown(): Promise<void> { return Promise.resolve(); }
}

/**
 * ExportGate sits in front of the batch processor and behind it (as the
 * exporter it calls): it knows how many spans wait, so it drops and counts
 * a span the queue has no room for (the SDK's own queue would drop it
 * silently), and it counts the spans of every export that fails or times out.
 */
class ExportGate implements SpanProcessor {
  readonly #batch: BatchSpanProcessor;
  #waiting = 0;
  /** #reported: a drop was logged and no export has succeeded since. */
  #reported = false;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly maxQueue: number,
    batch: TracingConfig['batch'],
    timeout: number,
    private readonly dropped: DropCounter,
    private readonly log: TraceLog,
    private readonly endpoint: string,
  ) {
    // The batch processor's exporter: the real one, counted (its shutdown is the real one's: the
    // processor shuts its exporter down, and this gate's own shutdown is the processor's).
    const counted: SpanExporter = {
      export: (spans, done) => this.#export(spans, done),
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
    this.#batch = new (otelSdk().BatchSpanProcessor)(counted, {
      maxQueueSize: batch.maxQueueSize,
      maxExportBatchSize: Math.min(batch.maxSize, batch.maxQueueSize),
      scheduledDelayMillis: batch.delay,
      // The exporter's own timeout ends an export first; this one only bounds an exporter that never answers.
      exportTimeoutMillis: timeout + 1000,
    });
  }

  onStart(span: Span, parent: Context): void {
    this.#batch.onStart(span, parent);
  }

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & 1) === 0) return;
    if (this.#waiting >= this.maxQueue) {
      this.#drop(1, 'the export queue is full');
      return;
    }
    this.#waiting++;
    this.#batch.onEnd(span);
  }

  #export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#waiting -= spans.length;
    this.exporter.export(spans, (result) => {
      if (result.code === otelCore().ExportResultCode.SUCCESS) this.#reported = false;
      else this.#drop(spans.length, result.error?.message ?? 'export failed');
      done(result);
    });
  }

  #drop(count: number, why: string): void {
    this.dropped(count);
    if (this.#reported) return;
    this.#reported = true;
    this.log.warn({ endpoint: this.endpoint, reason: why }, 'tracing: spans dropped (the collector is unreachable, slow or refusing them); counted in fulcrum_tracing_dropped_spans_total');
  }

  forceFlush(): Promise<void> {
    return this.#batch.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#batch.shutdown();
  }
}

/** ExporterFactory makes the OTLP exporter (a test may give another). */
export type ExporterFactory = (config: TracingConfig) => SpanExporter;

export const otlpExporter: ExporterFactory = (config) => new (otelExporter().OTLPTraceExporter)({
  url: config.otlp.endpoint,
  headers: config.otlp.headers,
  timeoutMillis: config.otlp.timeout,
});

/** createProvider builds the provider for a tracing config: the channel always, export when enabled. */
export function createProvider(config: TracingConfig, version: string, dropped: DropCounter, log: TraceLog, exporter: ExporterFactory = otlpExporter): BasicTracerProvider {
  const processors: SpanProcessor[] = [new ChannelProcessor()];
  if (config.enabled) {
    processors.push(new ExportGate(exporter(config), config.batch.maxQueueSize, config.batch, config.otlp.timeout, dropped, log, config.otlp.endpoint));
  }
  const attributes: Attributes = { 'service.version': version, ...config.resourceAttributes, 'service.name': config.serviceName };
  const sdk = otelSdk();
  return new sdk.BasicTracerProvider({
    resource: otelResources().resourceFromAttributes(attributes),
    // Sampling is decided before a span is started (request-trace.ts): what reaches the SDK is recorded.
    sampler: new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    spanProcessors: processors,
  });
}
