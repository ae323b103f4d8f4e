/**
 * DNS discovery: resolve a name (A, AAAA or SRV) now and again, and report
 * the addresses found as backends. The wait between two resolutions is
 * `interval`, or the records' TTL when that is shorter (never under a
 * second, so a TTL of 0 does not turn into a busy loop). A failed lookup
 * keeps the last good set, is logged once per outage, and is retried.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DnsDiscoveryConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';
import { readySpec, sleep, type BackendSpec, type DiscoverySource, type SnapshotListener } from './source.js';

/** ID_PREFIX starts the ids of DNS-discovered backends: dns-<address>-<port>. */
const ID_PREFIX = 'dns';
/** Per query: c-ares waits this long for an answer, `LOOKUP_TRIES` times per server. */
const LOOKUP_TIMEOUT_MS = 2000;
const LOOKUP_TRIES = 2;
/** MIN_TTL_MS: the shortest wait a record's TTL can ask for. */
const MIN_TTL_MS = 1000;
/** RETRY_AFTER_FAILURE_MS: a failed lookup is retried sooner than a long interval. */
const RETRY_AFTER_FAILURE_MS = 5000;

/** Answers for a missing name or record type: skip that SRV target, try AAAA after A. */
const NO_ADDRESS = new Set(['ENODATA', 'ENOTFOUND']);

interface Resolution {
  readonly specs: BackendSpec[];
  /** ttlMs is the smallest TTL seen, when the answer had TTLs. */
  readonly ttlMs: number | undefined;
}

export class DnsSource implements DiscoverySource {
  readonly name = 'dns';
  readonly target: string;
  lastError: string | null = null;
  readonly #resolver: Resolver;

  constructor(private readonly config: DnsDiscoveryConfig, private readonly log: Logger) {
    this.target = `${config.type} ${config.name}`;
    this.#resolver = new Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: LOOKUP_TRIES });
    if (config.servers !== undefined) this.#resolver.setServers(config.servers);
  }

  async start(onSnapshot: SnapshotListener, signal: AbortSignal): Promise<void> {
    const cancel = (): void => this.#resolver.cancel();
    signal.addEventListener('abort', cancel, { once: true });
    try {
      while (!signal.aborted) {
        const wait = await this.#resolveOnce(onSnapshot, signal);
        await sleep(wait, signal);
      }
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  /** resolveOnce resolves, reports, and says how long to wait before the next time. */
  async #resolveOnce(onSnapshot: SnapshotListener, signal: AbortSignal): Promise<number> {
    const { interval } = this.config;
    try {
      const { specs, ttlMs } = await this.resolve();
      if (signal.aborted) return 0;
      if (specs.length === 0) throw Object.assign(new Error(`no usable address for ${this.target}`), { code: 'ENODATA' });
      if (this.lastError !== null) this.log.info({ discovery: this.name, target: this.target, backends: specs.length }, 'DNS discovery: lookups succeed again');
      this.lastError = null;
      onSnapshot(specs);
      return ttlMs === undefined ? interval : Math.min(interval, Math.max(ttlMs, MIN_TTL_MS));
    } catch (err) {
      if (signal.aborted) return 0;
      const message = describe(err);
      // Logged once per outage: a resolver that is down for an hour is one warning, not one per interval.
      if (this.lastError === null) this.log.warn({ discovery: this.name, target: this.target, err: message }, 'DNS discovery: lookup failed; keeping the last known backends');
      this.lastError = message;
      return Math.min(interval, RETRY_AFTER_FAILURE_MS);
    }
  }

  /** resolve runs one resolution of the configured name. */
  async resolve(): Promise<Resolution> {
    const { name, type, port } = this.config;
    if (type === 'SRV') return this.#resolveSrv(name, port);
    const records = type === 'A' ? await this.#resolver.resolve4(name, { ttl: true }) : await this.#resolver.resolve6(name, { ttl: true });
    return {
      specs: dedupe(records.map((r) => readySpec(ID_PREFIX, r.address, port!))),
      ttlMs: minTtl(records.map((r) => r.ttl)),
    };
  }

  /**
   * resolveSrv follows RFC 2782 as far as a balancer can: the records of
   * the lowest priority number are the primaries, every other record
   * becomes a backup backend (used only while no primary is healthy, as
   * nginx does); weights become backend weights (0 counts as 1), and each
   * target is resolved to its addresses. An address listed at several
   * priorities is a primary if any of them is the best.
   */
  async #resolveSrv(name: string, portOverride: number | undefined): Promise<Resolution> {
    const records = await this.#resolver.resolveSrv(name);
    if (records.length === 0) return { specs: [], ttlMs: undefined };
    const lowest = Math.min(...records.map((r) => r.priority));
    // Primaries first, so that dedupe keeps an address's primary spec.
    const ordered = [...records].sort((a, b) => Number(a.priority !== lowest) - Number(b.priority !== lowest));
    const specs: BackendSpec[] = [];
    const ttls: number[] = [];
    for (const record of ordered) {
      const port = portOverride ?? record.port;
      const weight = Math.max(1, record.weight);
      const backup = record.priority !== lowest;
      if (isIP(record.name) !== 0) {
        specs.push(readySpec(ID_PREFIX, record.name, port, weight, backup));
        continue;
      }
      const addresses = await this.#addressesOf(record.name);
      for (const a of addresses) {
        specs.push(readySpec(ID_PREFIX, a.address, port, weight, backup));
        ttls.push(a.ttl);
      }
    }
    return { specs: dedupe(specs), ttlMs: minTtl(ttls) };
  }

  /**
   * addressesOf resolves an SRV target: A records, else AAAA. A target
   * with neither is skipped; any other failure (timeout, SERVFAIL) fails
   * the whole lookup, so that a flaky server never shrinks the set.
   */
  async #addressesOf(host: string): Promise<{ address: string; ttl: number }[]> {
    try {
      return await this.#resolver.resolve4(host, { ttl: true });
    } catch (err) {
      if (!NO_ADDRESS.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
    try {
      return await this.#resolver.resolve6(host, { ttl: true });
    } catch (err) {
      if (!NO_ADDRESS.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
      this.log.debug({ discovery: this.name, target: host }, 'DNS discovery: SRV target has no address; skipped');
      return [];
    }
  }
}

function minTtl(ttls: readonly number[]): number | undefined {
  return ttls.length === 0 ? undefined : Math.min(...ttls) * 1000;
}

function dedupe(specs: readonly BackendSpec[]): BackendSpec[] {
  const byId = new Map<string, BackendSpec>();
  for (const s of specs) if (!byId.has(s.id)) byId.set(s.id, s);
  return [...byId.values()];
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code !== undefined && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message;
}
