/**
 * explainRequest answers "which route would this request get, and what
 * would the backend see?" without sending anything: the look-up and the
 * request transforms the pipeline applies, on a request given as data
 * (`fulcrum routes --test`, like Envoy's route table check tool).
 */
import { renderTemplate } from '../core/template.js';
import { hostName } from './host.js';
import { normalizePath } from './path.js';
import type { Route } from './route.js';
import type { RouteTable } from './table.js';

export interface ExplainInput {
  readonly method: string;
  /** target: the origin-form target, path and query. */
  readonly target: string;
  readonly host: string;
  /** headers: a flat [name, value, ...] list, besides Host. */
  readonly headers: readonly string[];
  readonly clientAddress: string;
}

export type Explanation =
  | { readonly matched: false; readonly status: number; readonly reason: string }
  | { readonly matched: true; readonly route: Route; readonly action: string; readonly service: string | null; readonly path: string; readonly headers: readonly string[] };

export function explainRequest(table: RouteTable, input: ExplainInput): Explanation {
  const q = input.target.indexOf('?');
  const rawPath = q === -1 ? input.target : input.target.slice(0, q);
  const query = q === -1 ? '' : input.target.slice(q);
  const path = normalizePath(rawPath);
  if (path === null) return { matched: false, status: 400, reason: 'invalid percent-encoding in the path' };
  const host = hostName(input.host);
  const raw = ['Host', input.host, ...input.headers];
  const route = table.only ?? table.match(input.method.toUpperCase(), path, query.slice(1), host, raw);
  if (route === null) return { matched: false, status: 404, reason: `no route for host "${host}", path "${path}"` };
  if (route.access !== null && !route.access.admits(input.clientAddress)) return { matched: false, status: 403, reason: `${input.clientAddress} may not use route "${route.name}"` };
  const action = route.action;
  if (action.kind === 'respond') return { matched: true, route, action: `respond ${action.status}`, service: null, path, headers: [] };
  if (action.kind === 'redirect') {
    const groups = route.pathRegex?.exec(path) ?? null;
    const location = renderTemplate(action.to, (name) => (name === 'host' ? host : name === 'path' ? path : name === 'query' ? query : groups?.[Number(name)] ?? ''));
    return { matched: true, route, action: `redirect ${action.status} ${location}`, service: null, path, headers: [] };
  }
  // A split names its sides: which one a request gets is decided per request, by weight.
  const service = action.kind === 'service' ? action.service.name : action.split.sides.map((s) => s.service.name).join(' | ');
  const headers = ['host', route.preserveHost === false ? '(the backend\'s own)' : input.host, ...input.headers];
  let backendPath = path;
  if (route.rewrite !== null) {
    const forwarded = { prefix: null as string | null };
    backendPath = route.rewrite.apply(path, forwarded);
    if (forwarded.prefix !== null) headers.push('x-forwarded-prefix', forwarded.prefix);
  }
  if (route.requestHeaders !== null) {
    route.requestHeaders.apply(headers, {
      client_ip: input.clientAddress, host, route: route.name, service, request_id: '(a generated id)',
    }, 2);
  }
  const words = action.kind === 'service' ? `service ${service}` : `split ${action.split.sides.map((s) => `${s.service.name} ${s.weight}`).join(', ')}`;
  return { matched: true, route, action: words, service, path: backendPath + query, headers };
}
