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
