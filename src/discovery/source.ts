/**
 * DiscoverySource is one way of finding backends (DNS, Kubernetes). A source
 * knows nothing about the pool: it reports complete snapshots of what it
 * sees, and the DiscoveryManager turns them into pool changes.
 */
import { isIP } from 'node:net';
import { createHash } from 'node:crypto';

/** BackendSpec is one discovered endpoint. */
export interface BackendSpec {
  /** id is stable for the same address and port, so a backend that stays keeps its state. */
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  /**
   * ready: send it traffic. terminating: it is going away (a Kubernetes pod
   * shutting down or not ready); drain it if present, never add it.
   */
  readonly state: 'ready' | 'terminating';
  /** backup: serve only while no primary backend is healthy (an SRV record of a lower priority than the best). */
  readonly backup?: boolean;
}

export type SnapshotListener = (specs: readonly BackendSpec[]) => void;

export interface DiscoverySource {
  /** name is the source's kind, "dns" or "kubernetes", as in the config and /status. */
  readonly name: string;
  /** target says what is watched, for logs and /status, e.g. "SRV _http._tcp.api.internal". */
  readonly target: string;
  /** lastError is the current failure (the last good snapshot stays in force), or null. */
  readonly lastError: string | null;
  /**
   * start runs the source until `signal` aborts, calling `onSnapshot` with
   * the complete current set each time it is known. It resolves once
   * stopped and never rejects: failures keep the last good snapshot and are
   * logged.
   */
  start(onSnapshot: SnapshotListener, signal: AbortSignal): Promise<void>;
}

const ID_LIMIT = 64;

/**
 * specId derives a backend id from a source prefix ("dns", "k8s") and the
 * address, e.g. "dns-10.0.0.7-8080". The same endpoint gets the same id on every update
 * and on every Fulcrum instance, so shared health and counters line up.
 */
export function specId(prefix: string, host: string, port: number): string {
  const id = `${prefix}-${host.replace(/[^A-Za-z0-9.-]/g, '_')}-${port}`;
  if (id.length <= ID_LIMIT) return id;
  // Long host names: keep a readable head and make the tail unique.
  const digest = createHash('sha256').update(`${host}:${port}`).digest('hex').slice(0, 12);
  return `${id.slice(0, ID_LIMIT - digest.length - 1)}-${digest}`;
}

/** endpointUrl is "http://host:port", with brackets around an IPv6 address. */
export function endpointUrl(host: string, port: number): string {
  return `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

export function readySpec(prefix: string, host: string, port: number, weight = 1, backup = false): BackendSpec {
  const spec: BackendSpec = { id: specId(prefix, host, port), url: endpointUrl(host, port), weight, state: 'ready' };
  return backup ? { ...spec, backup } : spec;
}

/** sleep waits `ms`, or less when `signal` aborts (it then resolves, not rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Backoff yields growing delays with jitter (for reconnecting), reset after a success. */
export class Backoff {
  #attempt = 0;
  constructor(private readonly baseMs: number, private readonly maxMs: number) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.#attempt);
    this.#attempt++;
    // Half fixed, half random: instances that lost the same server do not return in step.
    return Math.round(ceiling / 2 + Math.random() * ceiling / 2);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
