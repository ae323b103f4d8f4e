/**
 * Admin authentication: every /admin/* request carries
 * `Authorization: Bearer <token>`, checked against `admin.token`
 * (or FULCRUM_ADMIN_TOKEN). Without a configured token the admin API is
 * off (403, saying how to turn it on), so that a forgotten setting never
 * leaves it open.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export type AuthFailureCode = 'FULCRUM_ERR_ADMIN_DISABLED' | 'FULCRUM_ERR_ADMIN_UNAUTHORIZED';

export type AuthResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly status: 401 | 403; readonly code: AuthFailureCode; readonly message: string; readonly headers: Record<string, string> };

const REALM = 'Bearer realm="fulcrum-admin"';

const DISABLED: AuthResult = {
  ok: false,
  status: 403,
  code: 'FULCRUM_ERR_ADMIN_DISABLED',
  message: 'the admin API is disabled: set admin.token in the config file (at least 16 characters) or the FULCRUM_ADMIN_TOKEN environment variable, then send "Authorization: Bearer <token>"',
  headers: {},
};

const MISSING: AuthResult = {
  ok: false,
  status: 401,
  code: 'FULCRUM_ERR_ADMIN_UNAUTHORIZED',
  message: 'missing bearer token: send "Authorization: Bearer <token>"',
  headers: { 'www-authenticate': REALM },
};

const WRONG: AuthResult = {
  ok: false,
  status: 401,
  code: 'FULCRUM_ERR_ADMIN_UNAUTHORIZED',
  message: 'invalid bearer token',
  headers: { 'www-authenticate': `${REALM}, error="invalid_token"` },
};

/** bearerToken extracts the token of an `Authorization: Bearer <token>` header (scheme case-insensitive). */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m === null ? undefined : m[1];
}

/**
 * tokensMatch compares in constant time. Both sides are hashed first so
 * that the comparison runs on equal-length digests: neither the content
 * nor the length of the configured token leaks through timing.
 */
export function tokensMatch(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** authorize checks one request against the configured token (read per request: a reload may change it). */
export function authorize(req: IncomingMessage, configuredToken: string | undefined): AuthResult {
  if (configuredToken === undefined || configuredToken === '') return DISABLED;
  const given = bearerToken(req);
  if (given === undefined) return MISSING;
  return tokensMatch(given, configuredToken) ? { ok: true } : WRONG;
}
