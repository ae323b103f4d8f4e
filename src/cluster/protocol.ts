/**
 * The control messages between the primary and its workers (the state
 * store's and the rate limiter's messages are defined next to their
 * stores). Every message carries a `fulcrum` tag, which tells it from any
 * other IPC traffic.
 */
import type { ReloadResult } from '../app/host.js';

/** ReadyMessage: the worker's listeners are bound and it serves. */
export interface ReadyMessage {
  readonly fulcrum: 'ready';
}

/** ShutdownMessage asks a worker to drain and exit 0 (the primary got SIGTERM or SIGINT). */
export interface ShutdownMessage {
  readonly fulcrum: 'shutdown';
}

/** ReloadMessage asks a worker to reload its config file (the primary got SIGHUP). */
export interface ReloadMessage {
  readonly fulcrum: 'reload';
  readonly id: number;
}

/** ReloadRequestMessage: a worker's admin API asks the primary to reload every worker. */
export interface ReloadRequestMessage {
  readonly fulcrum: 'reload-request';
  readonly id: number;
}

/** ReloadAllResultMessage answers a ReloadRequestMessage with the cluster's combined result. */
export interface ReloadAllResultMessage {
  readonly fulcrum: 'reload-all-result';
  readonly id: number;
  readonly result: ReloadResult;
}

/** MetricsRequestMessage: a worker serving /metrics in Prometheus form asks for every worker's, combined. */
export interface MetricsRequestMessage {
  readonly fulcrum: 'metrics-request';
  readonly id: number;
}

/** MetricsResultMessage answers it: the combined exposition, or null when it could not be gathered. */
export interface MetricsResultMessage {
  readonly fulcrum: 'metrics-result';
  readonly id: number;
  readonly result: { contentType: string; body: string } | null;
}

export interface ReloadedMessage {
  readonly fulcrum: 'reloaded';
  readonly id: number;
  readonly result: ReloadResult;
}
