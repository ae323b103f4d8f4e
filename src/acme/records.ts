/**
 * What the ACME feature stores, as JSON values under these keys (in Redis
 * under the state prefix and `value:`; see docs/redis.md):
 *
 *   acme:account:<directory hash>  the account key (sealed) for one CA
 *   acme:cert:<domains>            a certificate: PEM chain, key (sealed), dates
 *   acme:attempts:<domains>        the order history: failures, back-off, last error
 *   acme:challenge:<token>         an HTTP-01 key authorization (10 min TTL)
 *   acme:alpn:<domain>             a TLS-ALPN-01 certificate and key (10 min TTL)
 *
 * <domains> is the certificate's domain list, sorted, joined by ",".
 */
import { createHash } from 'node:crypto';

export interface CertificateRecord {
  readonly domains: readonly string[];
  readonly cert: string;
  /** key is sealed (KeySeal) when acme.storageKey is set. */
  readonly key: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly issuer: string;
  readonly issuedAt: number;
  readonly by: string;
}

export interface AttemptsRecord {
  readonly failures: number;
  /** nextAttempt: no order before this time (epoch ms), whichever instance holds the lease. */
  readonly nextAttempt: number;
  /** orders: when orders reached the CA within the last hour (the hourly cap). */
  readonly orders: readonly number[];
  readonly lastError: string | null;
  readonly lastErrorAt: number | null;
  readonly problem: Readonly<Record<string, unknown>> | null;
}

export interface AccountRecord {
  readonly directory: string;
  readonly key: string;
}

export const EMPTY_ATTEMPTS: AttemptsRecord = { failures: 0, nextAttempt: 0, orders: [], lastError: null, lastErrorAt: null, problem: null };

export const keys = {
  account: (directory: string) => `acme:account:${createHash('sha256').update(directory).digest('hex').slice(0, 16)}`,
  cert: (id: string) => `acme:cert:${id}`,
  attempts: (id: string) => `acme:attempts:${id}`,
  challenge: (token: string) => `acme:challenge:${token}`,
  alpn: (domain: string) => `acme:alpn:${domain}`,
};

/** certificateId names a certificate by its domains, in any order. */
export function certificateId(domains: readonly string[]): string {
  return [...new Set(domains)].sort().join(',');
}

/** parse reads a stored JSON value; a damaged one counts as absent. */
export function parse<T>(text: string | null): T | null {
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null ? value as T : null;
  } catch {
    return null;
  }
}
