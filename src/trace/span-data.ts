/**
 * spanEvent turns a finished SDK span into the plain object published on
 * `fulcrum:span` (core/events.ts): ids as hex strings, times in epoch
 * milliseconds, attributes as a flat record. A subscriber gets data, not
 * SDK objects, so it may use any SDK version, or none.
 */
import type { Attributes, HrTime } from '@opentelemetry/api';
import { otelApi } from './otel.js';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { SpanAttributes, SpanEvent } from '../core/events.js';

const millis = (t: HrTime): number => t[0] * 1000 + t[1] / 1e6;

function flat(attributes: Attributes | undefined): SpanAttributes {
  const out: Record<string, string | number | boolean> = {};
  if (attributes === undefined) return out;
  for (const key of Object.keys(attributes)) {
    const v = attributes[key];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[key] = v;
  }
  return out;
}

export function spanEvent(span: ReadableSpan): SpanEvent {
  const ctx = span.spanContext();
  const status = span.status;
  const { SpanKind, SpanStatusCode } = otelApi();
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    sampled: (ctx.traceFlags & 1) === 1,
    name: span.name,
    kind: span.kind === SpanKind.CLIENT ? 'client' : 'server',
    startTime: millis(span.startTime),
    endTime: millis(span.endTime),
    attributes: flat(span.attributes),
    events: span.events.map((e) => ({ name: e.name, time: millis(e.time), attributes: flat(e.attributes) })),
    status: status.code === SpanStatusCode.ERROR
      ? { code: 'error', ...(status.message === undefined ? {} : { message: status.message }) }
      : { code: status.code === SpanStatusCode.OK ? 'ok' : 'unset' },
  };
}
