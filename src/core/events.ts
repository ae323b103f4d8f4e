/**
 * diagnostics_channel names published by Fulcrum. Publishing costs nothing
 * when nobody subscribes, so the data path checks `hasSubscribers` first.
 */
import diagnostics from 'node:diagnostics_channel';

/** fulcrum:request — one message per proxied request, when it finishes. */
export const requestChannel = diagnostics.channel('fulcrum:request');
/** fulcrum:health — a backend became healthy or unhealthy. */
export const healthChannel = diagnostics.channel('fulcrum:health');
/** fulcrum:pool — backends were added, removed or changed. */
export const poolChannel = diagnostics.channel('fulcrum:pool');

export interface RequestEvent {
  /** route and service: what the request matched and went to; null when it matched no route. */
  readonly route: string | null;
  readonly service: string | null;
  readonly backend: string | null;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly durationMs: number;
  readonly attempts: number;
  readonly error: string | null;
  /** tunnel: for an upgraded connection (published when it closes), the bytes that went through it each way. */
  readonly tunnel?: { readonly bytesIn: number; readonly bytesOut: number };
}

export interface HealthEvent {
  readonly backend: string;
  readonly url: string;
  readonly healthy: boolean;
  readonly reasons: readonly string[];
  readonly detail: string | undefined;
  readonly at: number;
}

/**
 * fulcrum:span — one message per span Fulcrum ends (a request's server
 * span, each upstream attempt's client span), whether or not tracing
 * exports them: an embedding application can feed its own SDK from here.
 * A subscriber alone turns span collection on (tracing.enabled may be false).
 */
export const spanChannel = diagnostics.channel('fulcrum:span');

/** SpanAttributes: OpenTelemetry-style attributes (semantic-convention names where one exists). */
export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

export interface SpanEvent {
  /** traceId (32 hex digits), spanId (16), parentSpanId (16, or null for a root span). */
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string | null;
  /** sampled: the trace's sampled flag (what the backend was told). */
  readonly sampled: boolean;
  readonly name: string;
  /** kind: `server` for the client's request, `client` for one attempt to a backend. */
  readonly kind: 'server' | 'client';
  /** startTime, endTime: milliseconds since the epoch (fractional). */
  readonly startTime: number;
  readonly endTime: number;
  readonly attributes: SpanAttributes;
  readonly events: readonly { readonly name: string; readonly time: number; readonly attributes: SpanAttributes }[];
  readonly status: { readonly code: 'unset' | 'ok' | 'error'; readonly message?: string };
}
