/**
 * HTTP-01 validations on the plain-HTTP listeners: a certificate authority
 * fetches http://<domain>/.well-known/acme-challenge/<token> and expects the
 * token's key authorization. These routes come before everything else on
 * the listener (the balancer's own endpoints, the proxy, the https redirect),
 * so a validation is never proxied nor redirected. Any instance answers
 * whatever token the instance that ordered published, since the responder
 * reads the shared store; that read is the only I/O, and only validation
 * requests (a handful per certificate) make it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HTTP_CHALLENGE_PREFIX, type HttpChallengeResponder } from '../core/certificates.js';
import type { InternalRoutes } from '../core/internal-routes.js';

/** A token is base64url (RFC 8555 8.1); anything else is not one of ours. */
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': status === 200 ? 'application/octet-stream' : 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** tokenOf returns the token of a challenge URL (origin or absolute form), or undefined when it is not one. */
export function tokenOf(url: string): string | undefined {
  let path = url;
  if (!path.startsWith('/')) {
    try { path = new URL(url).pathname; } catch { return undefined; }
  }
  if (!path.startsWith(HTTP_CHALLENGE_PREFIX)) return undefined;
  const q = path.indexOf('?');
  return path.slice(HTTP_CHALLENGE_PREFIX.length, q < 0 ? undefined : q);
}

/** challengeRoutes answers HTTP-01 validations, and passes every other request to `next` (the admin endpoints, or none). */
export function challengeRoutes(responder: HttpChallengeResponder, next: InternalRoutes | null): InternalRoutes {
  return {
    matches: (url) => tokenOf(url) !== undefined || (next !== null && next.matches(url)),
    handle: (req: IncomingMessage, res: ServerResponse) => {
      const token = tokenOf(req.url ?? '/');
      if (token === undefined) {
        next!.handle(req, res);
        return;
      }
      if (!TOKEN.test(token) || (req.method !== 'GET' && req.method !== 'HEAD')) {
        send(res, 404, '404 Not Found: no such ACME challenge\n');
        return;
      }
      responder.keyAuthorization(token).then(
        (answer) => { if (answer === null) send(res, 404, '404 Not Found: no such ACME challenge\n'); else send(res, 200, answer); },
        () => send(res, 503, '503 Service Unavailable: the ACME challenge store is unavailable\n'),
      );
    },
  };
}
