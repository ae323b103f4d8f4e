/**
 * Which client a request counts against: `ip` (the client address the
 * pipeline passes, which honours X-Forwarded-For only from trusted
 * proxies), `header:<name>` (e.g. an API key; requests without it count
 * by address), or `global` (one allowance shared by everyone).
 */
import { createHash } from 'node:crypto';
import type { DownstreamRequest } from '../core/downstream.js';
import { headerValue } from '../core/header-value.js';

export type ClientKeyFn = (req: DownstreamRequest, clientAddress: string) => string;

/** MAX_KEY_LENGTH: longer header values are hashed, so that a key's memory is bounded. */
const MAX_KEY_LENGTH = 128;

const byAddress: ClientKeyFn = (_req, clientAddress) => clientAddress;
const everyone: ClientKeyFn = () => '*';

export function clientKeyFn(spec: string): ClientKeyFn {
  if (spec === 'ip') return byAddress;
  if (spec === 'global') return everyone;
  const name = spec.slice('header:'.length).toLowerCase();
  return (req, clientAddress) => {
    const value = headerValue(req.rawHeaders, name);
    // Prefixes keep the two kinds of key apart: a header cannot pose as an address.
    if (value === undefined || value === '') return `ip:${clientAddress}`;
    return value.length > MAX_KEY_LENGTH ? `h#${createHash('sha256').update(value).digest('base64url')}` : `h:${value}`;
  };
}

