/**
 * A local stand-in for the Kubernetes API server, for the EndpointSlice
 * list and watch that discovery uses, in the real wire format:
 *
 *   GET /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=...
 *     -> 200 EndpointSliceList with metadata.resourceVersion
 *   GET ...&watch=true&resourceVersion=N
 *     -> 200, chunked, one JSON event per line: {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}
 *        every change after N, then each new one as it happens; an ERROR event
 *        with a 410 Status when N is older than the kept history.
 *
 * Requests need the bearer token of the kubeconfig it writes. Tests change
 * slices, send bookmarks, forget history (so the next watch gets 410) and
 * drop open watches, and read `requests` to see what the client asked.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SliceEndpoint {
  ip: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export interface SliceInput {
  name: string;
  service: string;
  namespace?: string;
  addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: SliceEndpoint[];
  ports: { name?: string; port: number; protocol?: string }[];
}

export interface RecordedRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface HistoryEvent { readonly rv: number; readonly type: EventType; readonly object: KubeObject }
type KubeObject = Record<string, unknown> & { metadata: Record<string, unknown> & { name: string; namespace: string; resourceVersion: string; labels: Record<string, string> } };

interface Watcher {
  readonly namespace: string;
  readonly selector: Map<string, string>;
  readonly res: ServerResponse;
}

export interface FakeKube {
  readonly url: string;
  readonly token: string;
  readonly requests: RecordedRequest[];
  /** resourceVersion is the current version of the whole store. */
  readonly resourceVersion: number;
  /** openWatches counts the watch connections open now. */
  readonly openWatches: number;
  /** writeKubeconfig writes a kubeconfig pointing at this server; returns its path. */
  writeKubeconfig(namespace?: string): string;
  /** apply creates or replaces a slice (ADDED or MODIFIED to the watchers). */
  apply(slice: SliceInput): void;
  remove(name: string, namespace?: string): void;
  /** bookmark sends a BOOKMARK with the current version to every open watch. */
  bookmark(): void;
  /** forgetHistory drops the kept events: a watch from an older version gets 410 Gone. */
  forgetHistory(): void;
  /** dropWatches cuts every open watch connection (no clean end). */
  dropWatches(): void;
  /**
   * failWith makes every request fail while set (an outage): a status code
   * answers with that Status (e.g. 500), "reset" closes the connection
   * unanswered. Open watches are not touched; dropWatches() cuts them.
   */
  failWith: number | 'reset' | null;
  close(): Promise<void>;
}

const PREFIX = '/apis/discovery.k8s.io/v1/namespaces/';
const SERVICE_LABEL = 'kubernetes.io/service-name';

export async function startFakeKube(): Promise<FakeKube> {
  const token = 'fake-token-for-tests';
  const slices = new Map<string, KubeObject>();
  let history: HistoryEvent[] = [];
  let oldestKept = 0;
  let rv = 100;
  const watchers = new Set<Watcher>();
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  let failWith: number | 'reset' | null = null;

  const toObject = (input: SliceInput, version: number): KubeObject => {
    const namespace = input.namespace ?? 'default';
    return {
      kind: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: {
        name: input.name,
        generateName: `${input.service}-`,
        namespace,
        uid: `uid-${namespace}-${input.name}`,
        resourceVersion: String(version),
        generation: 1,
        creationTimestamp: '2024-05-01T10:00:00Z',
        labels: { [SERVICE_LABEL]: input.service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      },
      addressType: input.addressType ?? 'IPv4',
      endpoints: input.endpoints.map((e, i) => ({
        addresses: [e.ip],
        conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
        nodeName: 'node-1',
        targetRef: { kind: 'Pod', namespace, name: `${input.service}-pod-${i}`, uid: `pod-uid-${input.name}-${i}` },
      })),
      ports: input.ports.map((p) => ({ name: p.name ?? '', protocol: p.protocol ?? 'TCP', port: p.port })),
    };
  };

  const matches = (w: { namespace: string; selector: Map<string, string> }, o: KubeObject): boolean => {
    if (o.metadata.namespace !== w.namespace) return false;
    for (const [k, v] of w.selector) if (o.metadata.labels[k] !== v) return false;
    return true;
  };

  const send = (w: Watcher, type: string, object: unknown): void => {
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  };

  const record = (type: EventType, object: KubeObject): void => {
    history.push({ rv, type, object });
    for (const w of watchers) if (matches(w, object)) send(w, type, object);
  };

  const status = (res: ServerResponse, code: number, reason: string, message: string): void => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }));
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://fake');
    requests.push({ path: url.pathname, query: url.searchParams, authorization: req.headers.authorization });
    if (failWith === 'reset') return void req.socket.destroy();
    if (failWith !== null) return status(res, failWith, 'InternalError', `the fake API server answers ${failWith} (failWith)`);
    if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const m = url.pathname.startsWith(PREFIX) ? /^([^/]+)\/endpointslices$/.exec(url.pathname.slice(PREFIX.length)) : null;
    if (m === null || req.method !== 'GET') return status(res, 404, 'NotFound', `the server could not find the requested resource`);
    const namespace = m[1]!;
    const selector = new Map<string, string>();
    for (const part of (url.searchParams.get('labelSelector') ?? '').split(',')) {
      const [k, v] = part.split('=');
      if (k !== undefined && k !== '' && v !== undefined) selector.set(k, v);
    }
    const filter = { namespace, selector };
    if (url.searchParams.get('watch') !== 'true') {
      const items = [...slices.values()].filter((o) => matches(filter, o)).map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(rv) }, items }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // The API server sends the head at once; a watch with nothing to say yet is still open.
    res.flushHeaders();
    const from = url.searchParams.get('resourceVersion');
    const watcher: Watcher = { namespace, selector, res };
    if (from === null || from === '' || from === '0') {
      for (const o of slices.values()) if (matches(filter, o)) send(watcher, 'ADDED', o);
    } else if (Number(from) < oldestKept) {
      send(watcher, 'ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${oldestKept})`, reason: 'Expired', code: 410 });
      res.end();
      return;
    } else {
      for (const e of history) if (e.rv > Number(from) && matches(filter, e.object)) send(watcher, e.type, e.object);
    }
    watchers.add(watcher);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      watchers.delete(watcher);
    });
  };

  const server = http.createServer(handle);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    token,
    requests,
    get resourceVersion() { return rv; },
    get openWatches() { return watchers.size; },
    get failWith() { return failWith; },
    set failWith(value: number | 'reset' | null) { failWith = value; },
    writeKubeconfig(namespace = 'default') {
      const dir = mkdtempSync(join(tmpdir(), 'fulcrum-kube-'));
      const file = join(dir, 'kubeconfig.yaml');
      writeFileSync(file, [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '  - name: fake',
        '    cluster:',
        `      server: ${url}`,
        '      insecure-skip-tls-verify: true',
        'users:',
        '  - name: tester',
        '    user:',
        `      token: ${token}`,
        'contexts:',
        '  - name: fake',
        '    context:',
        '      cluster: fake',
        '      user: tester',
        `      namespace: ${namespace}`,
        'current-context: fake',
        '',
      ].join('\n'));
      return file;
    },
    apply(input) {
      const key = `${input.namespace ?? 'default'}/${input.name}`;
      const type: EventType = slices.has(key) ? 'MODIFIED' : 'ADDED';
      rv++;
      const object = toObject(input, rv);
      slices.set(key, object);
      record(type, object);
    },
    remove(name, namespace = 'default') {
      const key = `${namespace}/${name}`;
      const existing = slices.get(key);
      if (existing === undefined) return;
      slices.delete(key);
      rv++;
      record('DELETED', { ...existing, metadata: { ...existing.metadata, resourceVersion: String(rv) } });
    },
    bookmark() {
      for (const w of watchers) send(w, 'BOOKMARK', { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(rv) } });
    },
    forgetHistory() {
      history = [];
      oldestKept = rv;
    },
    dropWatches() {
      for (const w of watchers) w.res.socket?.destroy();
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
