/**
 * A request's trailers on their way to a backend: the client's trailer
 * fields without those that may not travel as trailers (connection-specific
 * fields, framing, routing: RFC 9110 6.5.1 and RFC 9113 8.2.2) and without
 * HTTP/2 pseudo-header fields. Names in lower case, values as received
 * (the listeners' parsers have already refused CR, LF and NUL in them).
 */
const NOT_IN_TRAILERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'content-length', 'trailer']);

import type { TrailerSource } from './dispatch.js';

/** forwardableTrailers: the source's trailers ([name, value...]) as the [name, value] pairs a backend may be sent. */
export function forwardableTrailers(source: TrailerSource): [string, string][] {
  const out: [string, string][] = [];
  const flat = source.rawTrailers;
  if (flat === undefined) return out;
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    if (name.charCodeAt(0) === 58 /* ":" */ || NOT_IN_TRAILERS.has(name)) continue;
    out.push([name, flat[i + 1]!]);
  }
  return out;
}
