import type { FulcrumConfig } from '../config/schema.js';

/** LimitsSource gives the limits in force; listeners read it on each use, so that a reload applies. */
export interface LimitsSource {
  readonly limits: FulcrumConfig['limits'];
}

/**
 * Keep-alive: a connection idle for `limits.keepAliveTimeout` is closed
 * then (at most a sweep late), and the `Keep-Alive: timeout=` it announced
 * is a second less, so that a client honouring it never sends a request
 * onto a connection being closed (HAProxy's and nginx's timeouts are exact
 * too; the margin is in what is announced). node:http closes an idle socket
 * one second after its keepAliveTimeout and announces that keepAliveTimeout
 * (in whole seconds): given the configured timeout less a second, it does
 * both. Below a second node:http cannot close sooner than 1 ms + 1 s.
 */
export const KEEP_ALIVE_MARGIN_MS = 1000;

/** nodeKeepAliveTimeout: the keepAliveTimeout a node:http server is given for `limits.keepAliveTimeout` (0: none). */
export function nodeKeepAliveTimeout(keepAliveTimeout: number): number {
  return keepAliveTimeout <= 0 ? 0 : Math.max(1, keepAliveTimeout - KEEP_ALIVE_MARGIN_MS);
}

/** announcedKeepAlive: the seconds `Keep-Alive: timeout=` says, as node:http writes it for nodeKeepAliveTimeout. */
export function announcedKeepAlive(keepAliveTimeout: number): number {
  return Math.floor(nodeKeepAliveTimeout(keepAliveTimeout) / 1000);
}
