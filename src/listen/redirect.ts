/**
 * `redirectHttps: true` on a plain listener: every request is answered with
 * 308 Permanent Redirect (which keeps the method and body, unlike 301) to
 * the same host and path over https, on the port of the balancer's TLS
 * listener (443, and then left out of the URL, when there is none).
 */
import type { InternalRoutes } from '../core/internal-routes.js';
import type { LimitsSource } from './limits.js';
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import { createHttpServer } from './server.js';

/** A host name, IPv4 address or bracketed IPv6 address, optionally with a port: nothing that could break a URL. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/**
 * httpsLocation builds the redirect target, or returns undefined when the
 * request names no usable host. The Host header's port (the plain port) is
 * replaced by the TLS port, left out when it is 443.
 */
export function httpsLocation(host: string | undefined, path: string, tlsPort: number): string | undefined {
  if (host === undefined || !HOST.test(host)) return undefined;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  const target = path.startsWith('/') ? path : originForm(path);
  return `https://${name}${tlsPort === 443 ? '' : `:${tlsPort}`}${target}`;
}

/** originForm turns an absolute-form target ("http://host/path?q") into "/path?q". */
function originForm(target: string): string {
  try {
    const url = new URL(target);
    return url.pathname + url.search;
  } catch {
    return '/';
  }
}

/** createRedirectServer redirects every request but those `internal` takes (ACME HTTP-01 validations, which must not be redirected). */
export function createRedirectServer(rt: LimitsSource, tlsPort: () => number, internal: InternalRoutes | null = null): Server {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (internal !== null && internal.matches(req.url ?? '/')) {
      internal.handle(req, res);
      return;
    }
    const location = httpsLocation(req.headers.host, req.url ?? '/', tlsPort());
    const body = location === undefined ? '400 Bad Request: a Host header is needed to redirect to https\n' : `308 Permanent Redirect: ${location}\n`;
    res.writeHead(location === undefined ? 400 : 308, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...(location === undefined ? {} : { location }),
    });
    res.end(body);
  };
  return createHttpServer(rt, { handler, upgrade: null });
}
