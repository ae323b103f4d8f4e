/**
 * The rate-limit response headers, after the IETF httpapi draft
 * "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers):
 *
 *   RateLimit-Policy: "default";q=200;w=2     the policy: q requests per w seconds
 *   RateLimit: "default";r=57;t=1             now: r requests remaining, full again in t seconds
 *
 * For a token bucket, q is the burst and w the time an empty bucket takes
 * to fill; for a sliding window, q is the rate and w the window. Seconds
 * are whole, rounded up (the draft's fields are integers).
 */
import type { Decision, RateLimitPolicy } from './types.js';

export function seconds(ms: number): number {
  return Math.ceil(ms / 1000);
}

/** quotedName renders a policy name as a structured-field string. */
export function quotedName(name: string): string {
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** policyHeader is the RateLimit-Policy value, computed once per policy. */
export function policyHeader(name: string, policy: RateLimitPolicy): string {
  const quota = policy.algorithm === 'token-bucket' ? policy.burst : policy.rate;
  const windowMs = policy.algorithm === 'token-bucket' ? Math.ceil((policy.burst * policy.per) / policy.rate) : policy.per;
  return `${quotedName(name)};q=${quota};w=${Math.max(1, seconds(windowMs))}`;
}

/** rateLimitHeader is the RateLimit value after a decision; `quoted` is quotedName(name). */
export function rateLimitHeader(quoted: string, d: Decision): string {
  return `${quoted};r=${d.remaining};t=${seconds(d.resetMs)}`;
}

/** retryAfter is the Retry-After value of a rejection: whole seconds, rounded up, at least 1. */
export function retryAfter(d: Decision): string {
  return String(Math.max(1, seconds(d.retryAfterMs)));
}
