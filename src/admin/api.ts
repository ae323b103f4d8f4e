/**
 * The admin API: JSON over HTTP under /admin/, every route behind the
 * bearer token (auth.ts). It reads the live backend set and the effective
 * config, and changes them at run time through `balancer.ops` (so that
 * the shared store can propagate each change), or reloads the config file.
 *
 *   GET    /admin/backends            every backend: config and live state
 *   POST   /admin/backends            add one: {"url": "...", "weight": 1}
 *   GET    /admin/backends/{id}       one backend
 *   PATCH  /admin/backends/{id}       {"weight": 3} and/or {"state": "enabled" | "draining" | "disabled"}
 *   DELETE /admin/backends/{id}       drain, then remove (?drain=false: remove now)
 *   GET    /admin/routes              every route: what it does, its requests, its split's weights and served counts
 *   GET    /admin/routes/{name}       one route
 *   PATCH  /admin/routes/{name}       {"split": [{"service": "v2", "weight": 10}, ...]}: a split's weights, now
 *   GET    /admin/config              the effective config, secrets redacted
 *   POST   /admin/reload              reload the config file
 *   GET    /admin/services            every service: policy, backends, health, the routes that use it
 *   GET    /admin/services/{name}     one service, with its config
 *   ...    /admin/services/{name}/backends[/{id}]   as /admin/backends, for that service
 *
 * /admin/backends is the default service's (the only one, or `default`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Backend } from '../backends/backend.js';
import type { BackendStateName } from '../backends/ops.js';
import { backendSchema, splitSchema } from '../config/schema.js';
import type { Route } from '../routing/route.js';
import { SplitChangeError } from '../routing/split-control.js';
import type { BalancerHost, ServiceHandle } from '../app/host.js';
import { stripMappedPrefix } from '../core/trusted-proxies.js';
import { authorize } from './auth.js';
import { pathOf, queryOf, readJsonBody, sendJson } from './http.js';

/** AdminErrorCode: every answer that is not a success carries one, so clients match codes, not messages. */
export type AdminErrorCode =
  | 'FULCRUM_ERR_ADMIN_DISABLED'
  | 'FULCRUM_ERR_ADMIN_UNAUTHORIZED'
  | 'FULCRUM_ERR_ADMIN_NOT_FOUND'
  | 'FULCRUM_ERR_ADMIN_METHOD'
  | 'FULCRUM_ERR_ADMIN_INVALID_BODY'
  | 'FULCRUM_ERR_ADMIN_CONFLICT'
  | 'FULCRUM_ERR_ADMIN_RELOAD_REJECTED';

export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

const stateNames = ['enabled', 'draining', 'disabled'] as const satisfies readonly BackendStateName[];

const routePatchSchema = z.object({ split: splitSchema }).strict();

const patchSchema = z.object({
  weight: z.number({ message: 'expected a non-negative number' }).min(0, 'expected a non-negative number').optional(),
  state: z.enum(stateNames, { message: 'expected "enabled", "draining" or "disabled"' }).optional(),
}).strict().refine((v) => v.weight !== undefined || v.state !== undefined, { message: 'expected "weight" and/or "state"' });

function sendError(res: ServerResponse, status: number, code: AdminErrorCode, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: message, code, ...extra }, headers);
}

/**
 * fieldProblems turns zod issues into `{path, message}`. For a union (a
 * backend is "a URL string or an object"), it reports the branch that got
 * furthest, so the answer names the field (`url`), not just "invalid input".
 */
export function fieldProblems(issues: readonly z.ZodIssue[]): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'invalid_union') {
      const branches = issue.unionErrors.map((e) => fieldProblems(e.issues));
      const depth = (ps: FieldProblem[]): number => Math.max(...ps.map((p) => (p.path === '' ? 0 : p.path.split('.').length)));
      const best = branches.reduce((a, b) => (depth(b) > depth(a) ? b : a));
      out.push(...best);
      continue;
    }
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    out.push({ path: issue.path.join('.'), message });
  }
  return out;
}

function invalidBody(res: ServerResponse, problems: readonly FieldProblem[]): void {
  const summary = problems.map((p) => (p.path === '' ? p.message : `${p.path}: ${p.message}`)).join('; ');
  sendError(res, 400, 'FULCRUM_ERR_ADMIN_INVALID_BODY', `invalid request body: ${summary}`, { problems });
}

/** readObject reads a JSON object body, answering 400/413 itself when it is not one. */
async function readObject(req: IncomingMessage, res: ServerResponse): Promise<Record<string, unknown> | undefined> {
  const body = await readJsonBody(req);
  if (!body.ok) {
    sendError(res, body.status, 'FULCRUM_ERR_ADMIN_INVALID_BODY', body.error);
    return undefined;
  }
  if (typeof body.value !== 'object' || body.value === null || Array.isArray(body.value)) {
    invalidBody(res, [{ path: '', message: 'expected a JSON object' }]);
    return undefined;
  }
  return body.value as Record<string, unknown>;
}

const SECRET_KEY = /token|secret|password|passwd|credential|private|apikey|api[-_]key/i;
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|x-api-key|x-auth-token)$/i;
export const REDACTED = '[redacted]';

/**
 * redactConfig copies a config with its secrets replaced: values of keys
 * that name a secret (token, secret, password...), sensitive header values
 * (Authorization, Cookie), and passwords inside URLs (redis://:pw@host).
 * File paths (TLS cert/key paths) are not secrets and stay.
 */
export function redactConfig(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key) || SECRET_HEADER.test(key)) return REDACTED;
    return redactUrlPassword(value);
  }
  // Items of a list under a secret key (e.g. several tokens) are secrets too.
  if (Array.isArray(value)) return value.map((v) => redactConfig(v, key));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactConfig(v, k);
    return out;
  }
  return value;
}

function redactUrlPassword(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(text)) return text;
  try {
    const url = new URL(text);
    if (url.password === '') return text;
    url.password = 'redacted';
    return url.href;
  } catch {
    // Not a WHATWG URL (redis+sentinel://u:p@h1:26379,h2:26379/m has several hosts): redact by shape.
    return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:redacted@');
  }
}

/** AdminApi serves /admin/*; one instance per balancer. */
export class AdminApi {
  constructor(private readonly balancer: BalancerHost) {}

  /** handle authenticates, then routes. */
  handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const auth = authorize(req, this.balancer.config.admin.token);
    if (!auth.ok) {
      if (auth.status === 401) this.balancer.log.warn({ client: clientOf(req), method: req.method, path: pathOf(req.url ?? '') }, 'admin API: rejected request without a valid token');
      sendError(res, auth.status, auth.code, auth.message, {}, auth.headers);
      return;
    }
    const path = pathOf(req.url ?? '/');
    if (path === '/admin' || path === '/admin/') return this.#allow(req, res, ['GET'], () => this.#index(res));
    if (path === '/admin/routes') return this.#allow(req, res, ['GET'], () => sendJson(res, 200, { routes: this.balancer.routes.routes.map((r) => this.balancer.routeStatus(r)) }));
    const r = /^\/admin\/routes\/([^/]+)$/.exec(path);
    if (r !== null) {
      const name = safeDecode(r[1]!);
      return this.#allow(req, res, ['GET', 'PATCH'], () => {
        const route = this.balancer.routes.get(name);
        if (route === undefined) return sendError(res, 404, 'FULCRUM_ERR_ADMIN_NOT_FOUND', `no route "${name}"`);
        if (req.method === 'GET') return sendJson(res, 200, this.balancer.routeStatus(route));
        return this.#patchRoute(req, res, route);
      });
    }
    if (path === '/admin/config') return this.#allow(req, res, ['GET'], () => sendJson(res, 200, { config: redactConfig(this.balancer.config) }));
    if (path === '/admin/reload') return this.#allow(req, res, ['POST'], () => this.#reload(req, res));
    if (path === '/admin/services') return this.#allow(req, res, ['GET'], () => this.#services(res));
    if (path.startsWith('/admin/backends')) {
      return this.#backends(req, res, this.balancer.serviceHandle(this.balancer.defaultService)!, path.slice('/admin/backends'.length), '/admin/backends');
    }
    const m = /^\/admin\/services\/([^/]+)(\/.*)?$/.exec(path);
    if (m !== null) {
      const name = safeDecode(m[1]!);
      const service = this.balancer.serviceHandle(name);
      if (service === undefined) return sendError(res, 404, 'FULCRUM_ERR_ADMIN_NOT_FOUND', `no service named "${name}"`);
      const rest = m[2] ?? '';
      if (rest === '' || rest === '/') return this.#allow(req, res, ['GET'], () => sendJson(res, 200, this.#describeService(service, true)));
      const base = `/admin/services/${encodeURIComponent(name)}/backends`;
      if (rest.startsWith('/backends')) return this.#backends(req, res, service, rest.slice('/backends'.length), base);
    }
    sendError(res, 404, 'FULCRUM_ERR_ADMIN_NOT_FOUND', `no admin route ${path}`);
  };

  /** backends serves one service's backend collection: `rest` is what follows ".../backends" in the path. */
  #backends(req: IncomingMessage, res: ServerResponse, service: ServiceHandle, rest: string, base: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (rest === '') return this.#allow(req, res, ['GET', 'POST'], () => (method === 'GET' ? this.#list(res, service) : this.#add(req, res, service, base)));
    const m = /^\/([^/]+)$/.exec(rest);
    if (m === null) {
      sendError(res, 404, 'FULCRUM_ERR_ADMIN_NOT_FOUND', `no admin route ${pathOf(req.url ?? '/')}`);
      return Promise.resolve();
    }
    const id = safeDecode(m[1]!);
    return this.#allow(req, res, ['GET', 'PATCH', 'DELETE'], () => {
      const backend = service.pool.get(id);
      if (backend === undefined) return sendError(res, 404, 'FULCRUM_ERR_ADMIN_NOT_FOUND', `no backend with id "${id}" in service "${service.name}"`);
      if (method === 'GET') return sendJson(res, 200, this.#describe(service, backend));
      if (method === 'PATCH') return this.#patch(req, res, service, backend);
      return this.#remove(req, res, service, backend);
    });
  }

  #services(res: ServerResponse): void {
    const names = this.balancer.serviceNames();
    sendJson(res, 200, { default: this.balancer.defaultService, services: names.map((n) => this.#describeService(this.balancer.serviceHandle(n)!, false)) });
  }

  /** describeService: the service's /status part, the routes that send to it, and (one service) its config. */
  #describeService(service: ServiceHandle, withConfig: boolean): Record<string, unknown> {
    const routes = this.balancer.config.routes.flatMap((r, i) => (r.service === service.name ? [r.name ?? `routes[${i}]`] : []));
    const status = service.status();
    return {
      name: service.name,
      default: service.name === this.balancer.defaultService,
      ...status,
      routes,
      ...(withConfig ? { config: redactConfig(service.config()) } : { backends: (status.backends as unknown[]).length }),
    };
  }

  async #allow(req: IncomingMessage, res: ServerResponse, methods: readonly string[], run: () => void | Promise<void>): Promise<void> {
    if (!methods.includes(req.method ?? '')) {
      sendError(res, 405, 'FULCRUM_ERR_ADMIN_METHOD', `${req.method} is not allowed here; use ${methods.join(', ')}`, {}, { allow: methods.join(', ') });
      return;
    }
    await run();
  }

  #index(res: ServerResponse): void {
    sendJson(res, 200, {
      routes: [
        'GET /admin/backends', 'POST /admin/backends', 'GET /admin/backends/{id}', 'PATCH /admin/backends/{id}',
        'DELETE /admin/backends/{id}?drain=true|false', 'GET /admin/routes', 'GET /admin/routes/{name}', 'PATCH /admin/routes/{name}',
        'GET /admin/config', 'POST /admin/reload',
        'GET /admin/services', 'GET /admin/services/{name}', 'GET|POST /admin/services/{name}/backends',
        'GET|PATCH|DELETE /admin/services/{name}/backends/{id}',
      ],
    });
  }

  #describe(service: ServiceHandle, backend: Backend): Record<string, unknown> {
    return { ...service.backendStatus(backend), service: service.name, removeWhenDrained: backend.removeWhenDrained, config: redactConfig(backend.config) };
  }

  #list(res: ServerResponse, service: ServiceHandle): void {
    sendJson(res, 200, { service: service.name, backends: service.pool.snapshot.map((b) => this.#describe(service, b)) });
  }

  async #add(req: IncomingMessage, res: ServerResponse, service: ServiceHandle, base: string): Promise<void> {
    const body = await readObject(req, res);
    if (body === undefined) return;
    // A new backend enters rotation once its health checks pass (like a configured
    // `healthy: false`), unless the body says otherwise or active checks are off.
    const input = { healthy: !service.config().healthCheck.enabled, ...body };
    const parsed = backendSchema.safeParse(input);
    if (!parsed.success) return invalidBody(res, fieldProblems(parsed.error.issues));
    const actor = actorOf(req);
    let backend: Backend;
    try {
      backend = service.ops.add(parsed.data, 'admin', actor);
    } catch (err) {
      return sendError(res, 409, 'FULCRUM_ERR_ADMIN_CONFLICT', (err as Error).message);
    }
    this.balancer.log.info({ actor, op: 'add', service: service.name, backend: backend.id, url: backend.url.href, weight: backend.weight }, 'admin: backend added');
    sendJson(res, 201, this.#describe(service, backend), { location: `${base}/${encodeURIComponent(backend.id)}` });
  }

  async #patch(req: IncomingMessage, res: ServerResponse, service: ServiceHandle, backend: Backend): Promise<void> {
    const body = await readObject(req, res);
    if (body === undefined) return;
    const parsed = patchSchema.safeParse(body);
    if (!parsed.success) return invalidBody(res, fieldProblems(parsed.error.issues));
    const actor = actorOf(req);
    const { weight, state } = parsed.data;
    // The backend may have left while the body was read.
    if (service.pool.get(backend.id) !== backend) return sendError(res, 404, 'FULCRUM_ERR_ADMIN_NOT_FOUND', `no backend with id "${backend.id}"`);
    if (weight !== undefined) {
      const before = backend.weight;
      service.ops.setWeight(backend.id, weight, 'admin', actor);
      this.balancer.log.info({ actor, op: 'weight', service: service.name, backend: backend.id, url: backend.url.href, from: before, to: weight }, 'admin: backend weight changed');
    }
    if (state !== undefined) {
      const wasHealthy = backend.healthy;
      service.ops.setState(backend.id, state, 'admin', actor);
      this.balancer.log.info({ actor, op: 'state', service: service.name, backend: backend.id, url: backend.url.href, state }, `admin: backend ${state}`);
      if (wasHealthy !== backend.healthy) this.balancer.recordEvent(backend, `${state} by ${actor}`);
    }
    sendJson(res, 200, this.#describe(service, backend));
  }

  async #patchRoute(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    const body = await readObject(req, res);
    if (body === undefined) return;
    const parsed = routePatchSchema.safeParse(body);
    if (!parsed.success) return invalidBody(res, fieldProblems(parsed.error.issues));
    const actor = actorOf(req);
    // The table may have been replaced (a reload) while the body was read: change the route in force.
    const current = this.balancer.routes.get(route.name);
    const before = current?.split?.sides.map((s) => ({ service: s.service.name, weight: s.weight })) ?? null;
    try {
      this.balancer.splits.set({ route: route.name, split: parsed.data.split, at: Date.now(), by: 'local', actor }, 'admin');
    } catch (err) {
      if (!(err instanceof SplitChangeError)) throw err;
      if (err.status === 400) return invalidBody(res, [{ path: err.path, message: err.message }]);
      return sendError(res, err.status, err.status === 404 ? 'FULCRUM_ERR_ADMIN_NOT_FOUND' : 'FULCRUM_ERR_ADMIN_CONFLICT', err.message);
    }
    this.balancer.log.info({ actor, op: 'split', route: route.name, from: before, to: parsed.data.split }, 'admin: split weights changed');
    sendJson(res, 200, this.balancer.routeStatus(this.balancer.routes.get(route.name)!));
  }

  #remove(req: IncomingMessage, res: ServerResponse, service: ServiceHandle, backend: Backend): void {
    const drainParam = queryOf(req.url ?? '').get('drain');
    if (drainParam !== null && drainParam !== 'true' && drainParam !== 'false') {
      return invalidBody(res, [{ path: 'drain', message: 'expected drain=true or drain=false' }]);
    }
    const drain = drainParam !== 'false';
    const actor = actorOf(req);
    const wasHealthy = backend.healthy;
    service.ops.remove(backend.id, drain, 'admin', actor);
    const removed = service.pool.get(backend.id) !== backend;
    this.balancer.log.info({ actor, op: 'remove', service: service.name, backend: backend.id, url: backend.url.href, drain, inflight: backend.state.inflight, removed },
      removed ? 'admin: backend removed' : 'admin: backend draining; it is removed when its in-flight requests finish');
    if (!removed && wasHealthy !== backend.healthy) this.balancer.recordEvent(backend, `draining for removal by ${actor}`);
    if (removed) sendJson(res, 200, { id: backend.id, url: backend.url.href, removed: true });
    else sendJson(res, 202, { id: backend.id, url: backend.url.href, removed: false, draining: true, inflight: backend.state.inflight });
  }

  async #reload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const actor = actorOf(req);
    this.balancer.log.info({ actor, op: 'reload' }, 'admin: reload requested');
    const result = await this.balancer.reloadEverywhere();
    if (result.ok) sendJson(res, 200, result);
    else sendJson(res, 422, { ...result, code: 'FULCRUM_ERR_ADMIN_RELOAD_REJECTED' });
  }
}

function clientOf(req: IncomingMessage): string {
  return stripMappedPrefix(req.socket.remoteAddress ?? 'unknown');
}

function actorOf(req: IncomingMessage): string {
  return `admin-api ${clientOf(req)}`;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** installAdminApi mounts /admin and /admin/* on the balancer's own endpoints. */
export function installAdminApi(balancer: BalancerHost): AdminApi {
  const api = new AdminApi(balancer);
  balancer.admin.mount('/admin', api.handle);
  balancer.admin.mount('/admin/', api.handle);
  return api;
}
