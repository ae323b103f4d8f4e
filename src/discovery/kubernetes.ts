/**
 * Kubernetes discovery: watch the EndpointSlices of one Service through
 * @kubernetes/client-node and report its endpoints. The loop is the usual
 * informer one: list (remember the collection's resourceVersion), watch from
 * there (ADDED, MODIFIED, DELETED, BOOKMARK), reconnect from the last
 * version seen when the watch ends, list again on 410 Gone, and back off
 * while the API server cannot be reached, keeping the last known set.
 *
 * The client library is loaded only when this source starts: it is large,
 * and a balancer without Kubernetes discovery never pays for it.
 */
import type * as k8s from '@kubernetes/client-node';
import type { KubernetesDiscoveryConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';
import { specsFromSlices, type EndpointSlice } from './endpoint-slices.js';
import { Backoff, sleep, type DiscoverySource, type SnapshotListener } from './source.js';

const ID_PREFIX = 'k8s';
const SERVICE_LABEL = 'kubernetes.io/service-name';
/** Watches last 5 to 10 minutes (as client-go's), so that instances do not reconnect in step. */
const WATCH_TIMEOUT_MIN_S = 300;
/** A watch silent for this long past its timeout is taken as dead (a half-open connection). */
const WATCH_GRACE_MS = 30_000;
/** A watch that stayed up this long resets the reconnect backoff. */
const WATCH_STABLE_MS = 5_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;

interface Client {
  readonly api: k8s.DiscoveryV1Api;
  readonly watch: k8s.Watch;
  readonly namespace: string;
  /** withSignal makes an API call abortable (the generated client takes the signal through a middleware). */
  withSignal(signal: AbortSignal): k8s.ConfigurationOptions;
}

interface WatchEnd {
  readonly resourceVersion: string;
  /** connected: the API server accepted the watch (200) before it ended. */
  readonly connected: boolean;
  /** gone: 410, the version is too old; list again. */
  readonly gone: boolean;
  readonly error: Error | null;
  readonly stable: boolean;
}

export class KubernetesSource implements DiscoverySource {
  readonly name = 'kubernetes';
  target: string;
  lastError: string | null = null;
  #slices = new Map<string, EndpointSlice>();
  #problems = '';

  constructor(private readonly config: KubernetesDiscoveryConfig, private readonly log: Logger) {
    this.target = `${config.namespace ?? '(default namespace)'}/${config.service}`;
  }

  async start(onSnapshot: SnapshotListener, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(BACKOFF_BASE_MS, BACKOFF_MAX_MS);
    let client: Client | undefined;
    let resourceVersion: string | undefined;
    while (!signal.aborted) {
      try {
        client ??= await this.#connect();
        if (resourceVersion === undefined) {
          resourceVersion = await this.#list(client, signal);
          if (signal.aborted) break;
          this.#recovered();
          this.#report(onSnapshot);
        }
        const end = await this.#watch(client, resourceVersion, onSnapshot, signal);
        if (signal.aborted) break;
        resourceVersion = end.resourceVersion;
        if (end.gone) {
          this.log.info({ discovery: this.name, target: this.target }, 'Kubernetes discovery: watch expired (410 Gone); listing again');
          resourceVersion = undefined;
          continue;
        }
        if (!end.connected) throw end.error ?? new Error('watch ended before it started');
        if (end.stable) backoff.reset();
        if (end.error !== null) this.log.info({ discovery: this.name, target: this.target, err: end.error.message }, 'Kubernetes discovery: watch dropped; reconnecting');
        // A watch closed cleanly by the server after a while (its timeout) reconnects at once.
        if (end.error === null && end.stable) continue;
      } catch (err) {
        if (signal.aborted) break;
        this.#failed(err as Error);
      }
      await sleep(backoff.next(), signal);
    }
  }

  async #connect(): Promise<Client> {
    const lib = await import('@kubernetes/client-node');
    const kc = new lib.KubeConfig();
    if (this.config.kubeconfig !== undefined) kc.loadFromFile(this.config.kubeconfig);
    else kc.loadFromDefault();
    const namespace = this.config.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    this.target = `${namespace}/${this.config.service}`;
    return {
      api: kc.makeApiClient(lib.DiscoveryV1Api),
      watch: new lib.Watch(kc),
      namespace,
      withSignal: (signal) => ({
        middleware: [{
          pre: (ctx) => { ctx.setSignal(signal); return new lib.Observable(Promise.resolve(ctx)); },
          post: (res) => new lib.Observable(Promise.resolve(res)),
        }],
        middlewareMergeStrategy: 'append',
      }),
    };
  }

  get #selector(): string {
    return `${SERVICE_LABEL}=${this.config.service}`;
  }

  /** list replaces the known slices with the current ones and returns the collection's version. */
  async #list(client: Client, signal: AbortSignal): Promise<string> {
    const list = await client.api.listNamespacedEndpointSlice({ namespace: client.namespace, labelSelector: this.#selector }, client.withSignal(signal));
    this.#slices = new Map(list.items.map((slice) => [slice.metadata?.name ?? '', slice as EndpointSlice]));
    return list.metadata?.resourceVersion ?? '';
  }

  /** watch follows changes from `resourceVersion` until the watch ends, for whatever reason. */
  #watch(client: Client, resourceVersion: string, onSnapshot: SnapshotListener, signal: AbortSignal): Promise<WatchEnd> {
    const path = `/apis/discovery.k8s.io/v1/namespaces/${client.namespace}/endpointslices`;
    const timeoutSeconds = WATCH_TIMEOUT_MIN_S + Math.floor(Math.random() * WATCH_TIMEOUT_MIN_S);
    const startedAt = Date.now();
    let latest = resourceVersion;
    let connected = false;
    let received = false;
    let gone = false;
    let controller: AbortController | undefined;
    let idle: NodeJS.Timeout | undefined;
    return new Promise<WatchEnd>((resolve) => {
      let ended = false;
      const stop = (): void => controller?.abort();
      const armIdle = (): void => {
        clearTimeout(idle);
        idle = setTimeout(stop, timeoutSeconds * 1000 + WATCH_GRACE_MS);
        idle.unref();
      };
      const done = (err: unknown): void => {
        if (ended) return;
        ended = true;
        clearTimeout(idle);
        signal.removeEventListener('abort', stop);
        const error = err === null || err === undefined ? null : asError(err);
        if ((err as { statusCode?: number } | null)?.statusCode === 410) gone = true;
        const stable = received || Date.now() - startedAt >= WATCH_STABLE_MS;
        resolve({ resourceVersion: latest, connected, gone, error, stable });
      };
      const onEvent = (type: string, object: unknown): void => {
        armIdle();
        received = true;
        const slice = object as EndpointSlice & { code?: number; message?: string };
        const version = slice.metadata?.resourceVersion;
        switch (type) {
          case 'ADDED':
          case 'MODIFIED':
            this.#slices.set(slice.metadata?.name ?? '', slice);
            break;
          case 'DELETED':
            this.#slices.delete(slice.metadata?.name ?? '');
            break;
          case 'BOOKMARK':
            // A bookmark only moves the version forward, so a reconnect resumes from here.
            if (version !== undefined) latest = version;
            return;
          case 'ERROR':
            // The API server reports an expired version as a Status event, then ends the stream.
            if (slice.code === 410) gone = true;
            else this.log.warn({ discovery: this.name, target: this.target, status: slice.code, err: slice.message }, 'Kubernetes discovery: watch error');
            stop();
            return;
          default:
            return;
        }
        if (version !== undefined) latest = version;
        this.#report(onSnapshot);
      };
      signal.addEventListener('abort', stop, { once: true });
      armIdle();
      client.watch.watch(path, { labelSelector: this.#selector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds }, onEvent, done)
        .then((c) => {
          controller = c;
          if (!ended) {
            connected = true;
            this.#recovered();
          }
          if (signal.aborted) c.abort();
        }, done);
    });
  }

  #report(onSnapshot: SnapshotListener): void {
    const { specs, problems } = specsFromSlices(this.#slices.values(), this.config.port, ID_PREFIX);
    const text = problems.join('; ');
    if (text !== '' && text !== this.#problems) this.log.warn({ discovery: this.name, target: this.target, problems }, 'Kubernetes discovery: EndpointSlices skipped');
    this.#problems = text;
    onSnapshot(specs);
  }

  #failed(err: Error): void {
    const status = (err as { code?: unknown }).code;
    const hint = status === 401 || status === 403 ? ' (check the ServiceAccount and its Role: list and watch on endpointslices)' : '';
    const message = `${typeof status === 'number' ? `HTTP ${status}: ` : ''}${err.message.split('\n')[0]}${hint}`;
    // Once per outage: the set in force stays, and the retries are quiet until one succeeds.
    if (this.lastError === null) this.log.warn({ discovery: this.name, target: this.target, err: message }, 'Kubernetes discovery: cannot reach the API server; keeping the last known backends');
    this.lastError = message;
  }

  #recovered(): void {
    if (this.lastError === null) return;
    this.log.info({ discovery: this.name, target: this.target }, 'Kubernetes discovery: connected again');
    this.lastError = null;
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
}
