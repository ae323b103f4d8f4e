/**
 * hashKeyFunction turns the `hashKey` setting into the function the proxy
 * calls per request to obtain the consistent-hash key:
 *
 *   ip             the client address (the forwarded one only from trusted proxies)
 *   path           the path, without the query string
 *   header:<name>  a request header (name case-insensitive)
 *   cookie:<name>  a cookie (name case-sensitive)
 *   query:<name>   a query parameter
 *
 * It returns undefined when the request has no such key; the hash policies
 * then use the client address.
 */
import type { RequestView } from '../core/request-view.js';
import { cookieValue } from './cookie.js';
import { headerValue } from '../core/header-value.js';

/** HashKeyFn extracts the consistent-hash key of a request, for the hash policies. */
export type HashKeyFn = (req: RequestView) => string | undefined;

export function hashKeyFunction(spec: string): HashKeyFn {
  if (spec === 'ip') return (req) => req.clientAddress;
  if (spec === 'path') {
    return (req) => {
      const url = req.url;
      const q = url.indexOf('?');
      return q < 0 ? url : url.slice(0, q);
    };
  }
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  switch (kind) {
    case 'header': {
      const lower = name.toLowerCase();
      return (req) => headerValue(req.rawHeaders, lower);
    }
    case 'cookie':
      return (req) => cookieValue(req.cookie, name);
    case 'query':
      return (req) => {
        const url = req.url;
        const q = url.indexOf('?');
        return q < 0 ? undefined : new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined;
      };
    default:
      // The schema admits only the forms above; reaching this is a programming error.
      throw new Error(`unsupported hashKey "${spec}"`);
  }
}
