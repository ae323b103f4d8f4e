/**
 * The shape of a request filter (the rate limiter is one), which the proxy
 * pipeline runs on every proxied request before a backend is chosen.
 */
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import type { FulcrumError } from './errors.js';

/**
 * RequestFilter runs before a backend is chosen: it calls `next()` to let the
 * request go on, or `reject(error, headers)` to answer it (e.g. the rate
 * limiter's 429), which goes through the same error answer, metrics and
 * access log as every other refusal. It must not do I/O except where
 * documented (rate limiting with a shared store).
 */
export type FilterReject = (error: FulcrumError, headers?: Readonly<Record<string, string>>) => void;

export interface RequestFilter {
  filter(req: DownstreamRequest, res: DownstreamResponse, clientAddress: string, next: () => void, reject: FilterReject): void;
}
