/**
 * AcmeManager keeps the certificates of the listeners with `tls.acme`:
 * every `acme.checkInterval` each instance
 *   1. reads the stored certificates and installs any it does not serve yet
 *      (so a certificate ordered by another instance is served within one
 *      interval, without a restart);
 *   2. competes for the `acme` lease; only the holder orders, so N instances
 *      share one account and make one order per certificate;
 *   3. as the holder, orders the certificates that are missing or within
 *      `renewBefore` of expiry, one at a time.
 * A failed order backs off (retryDelay doubled per failure, at most an
 * hour) and at most MAX_ORDERS_PER_HOUR orders per certificate reach the CA
 * in an hour; both are stored, so a new lease holder respects them too. The
 * certificate in service stays until a new one is stored.
 */
import { X509Certificate } from 'node:crypto';
import type { AcmeConfig } from '../config/schema.js';
import type { DynamicCertificates } from '../core/certificates.js';
import type { Logger } from '../observe/log.js';
import type { StateStore } from '../state/store.js';
import { AcmeOrderError, newAccountKey, order, type AcmeChallenge, type IssuedCertificate, type OrderRequest } from './issuer.js';
import { EMPTY_ATTEMPTS, keys, parse, type AccountRecord, type AttemptsRecord, type CertificateRecord } from './records.js';
import type { KeySeal } from './seal.js';
import type { AcmeStorage } from './storage.js';

/** At most this many orders per certificate reach the CA in an hour (a CA that refuses is not asked again and again). */
export const MAX_ORDERS_PER_HOUR = 3;
const HOUR = 3_600_000;
/** Below this much validity left, a certificate that cannot be renewed logs an error every hour. */
const WARN_BEFORE = 7 * 24 * HOUR;
const CHALLENGE_TTL = 10 * 60_000;
export const ACME_LEASE = 'acme';

/** WantedCertificate is one certificate the listeners ask for. */
export interface WantedCertificate {
  readonly id: string;
  readonly domains: readonly string[];
  readonly email: string;
}

export interface AcmeManagerOptions {
  readonly config: AcmeConfig;
  readonly wanted: readonly WantedCertificate[];
  readonly store: StateStore;
  readonly storage: AcmeStorage;
  readonly seal: KeySeal;
  readonly certificates: DynamicCertificates;
  readonly log: Logger;
  /** shared: other processes may receive the CA's validations (Redis, or workers over IPC). */
  readonly shared: boolean;
  /** order is the ACME client (issuer.ts); replaced in unit tests. */
  readonly order?: (request: OrderRequest) => Promise<IssuedCertificate>;
  readonly onInstalled?: (id: string, record: CertificateRecord) => void;
}

interface Entry {
  readonly wanted: WantedCertificate;
  /** installed: the record now served (issuedAt tells a newer one). */
  installed: CertificateRecord | null;
  attempts: AttemptsRecord;
  ordering: boolean;
  lastWarned: number;
}

export class AcmeManager {
  readonly #o: AcmeManagerOptions;
  #entries: Entry[];
  /** #tokens: the HTTP-01 answers this instance published (answered without a store read). */
  readonly #tokens = new Map<string, string>();
  readonly #alpnServed = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #holder = false;
  #closed = false;

  constructor(options: AcmeManagerOptions) {
    this.#o = options;
    this.#entries = options.wanted.map((wanted) => ({ wanted, installed: null, attempts: EMPTY_ATTEMPTS, ordering: false, lastWarned: 0 }));
  }

  /**
   * want replaces the list of certificates (a reload changed the domains,
   * or the route hosts under `domains: auto`): those kept keep their state,
   * new ones are ordered at the next round, and those no longer wanted stop
   * being served and renewed (what is stored stays, for a later return).
   */
  want(wanted: readonly WantedCertificate[]): void {
    const before = new Map(this.#entries.map((e) => [e.wanted.id, e]));
    this.#entries = wanted.map((w) => {
      const kept = before.get(w.id);
      before.delete(w.id);
      return kept === undefined ? { wanted: w, installed: null, attempts: EMPTY_ATTEMPTS, ordering: false, lastWarned: 0 } : { ...kept, wanted: w };
    });
    for (const gone of before.values()) this.#o.certificates.delete(gone.wanted.id);
    if (this.#timer !== null) void this.tick();
  }

  get holder(): boolean {
    return this.#holder;
  }

  get #leaseTtl(): number {
    return Math.max(4 * this.#o.config.checkInterval, 2000);
  }

  start(): void {
    this.#timer = setInterval(() => { void this.tick(); }, this.#o.config.checkInterval);
    this.#timer.unref();
  }

  /** keyAuthorization answers an HTTP-01 validation: this instance's own tokens, else the shared store. */
  async keyAuthorization(token: string): Promise<string | null> {
    return this.#tokens.get(token) ?? await this.#o.store.getValue(keys.challenge(token));
  }

  /** tick runs one round (never two at once); errors are logged, never thrown. */
  tick(): Promise<void> {
    this.#running ??= this.#round().finally(() => { this.#running = null; });
    return this.#running;
  }

  async #round(): Promise<void> {
    if (this.#closed) return;
    const now = Date.now();
    for (const e of this.#entries) await this.#refresh(e);
    if (this.#o.config.challenge === 'tls-alpn-01' && this.#o.shared) await this.#syncAlpn();
    try {
      this.#holder = await this.#o.store.acquireLease(ACME_LEASE, this.#leaseTtl);
    } catch {
      this.#holder = false;
    }
    if (this.#holder) for (const e of this.#entries) if (this.#due(e, now)) await this.#attempt(e);
    for (const e of this.#entries) this.#warnIfExpiring(e, Date.now());
  }

  /** #refresh reads the stored certificate and attempts of one entry and installs a newer certificate. */
  async #refresh(e: Entry): Promise<void> {
    try {
      const [cert, attempts] = await Promise.all([this.#o.storage.get(keys.cert(e.wanted.id)), this.#o.storage.get(keys.attempts(e.wanted.id))]);
      e.attempts = parse<AttemptsRecord>(attempts) ?? e.attempts;
      const record = parse<CertificateRecord>(cert);
      if (record !== null && (e.installed === null || record.issuedAt > e.installed.issuedAt)) this.#install(e, record);
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message, domains: e.wanted.domains }, 'ACME: cannot read the stored certificate; the one in service stays');
    }
  }

  #install(e: Entry, record: CertificateRecord): void {
    try {
      this.#o.certificates.set(e.wanted.id, e.wanted.domains, record.cert, this.#o.seal.open(record.key));
    } catch (err) {
      this.#o.log.error({ err: (err as Error).message, domains: e.wanted.domains }, 'ACME: the stored certificate cannot be used');
      return;
    }
    const first = e.installed === null;
    e.installed = record;
    this.#o.onInstalled?.(e.wanted.id, record);
    this.#o.log.info({ domains: e.wanted.domains, issuer: record.issuer, notAfter: new Date(record.notAfter).toISOString(), by: record.by }, first ? 'ACME: certificate in service' : 'ACME: renewed certificate in service');
  }

  /** #due: no certificate, or within renewBefore of expiry, and the back-off and the hourly cap allow an order. */
  #due(e: Entry, now: number): boolean {
    if (e.ordering) return false;
    const c = e.installed;
    if (c !== null && now < c.notAfter - this.#o.config.renewBefore) return false;
    if (now < e.attempts.nextAttempt) return false;
    return e.attempts.orders.filter((t) => t > now - HOUR).length < MAX_ORDERS_PER_HOUR;
  }

  async #attempt(e: Entry): Promise<void> {
    e.ordering = true;
    const started = Date.now();
    // The lease is kept while the order runs (it can take longer than the lease's TTL).
    const keep = setInterval(() => { this.#o.store.acquireLease(ACME_LEASE, this.#leaseTtl).catch(() => undefined); }, Math.floor(this.#leaseTtl / 3));
    keep.unref();
    const log = this.#o.log;
    try {
      log.info({ domains: e.wanted.domains, directory: this.#o.config.directory, renewal: e.installed !== null }, 'ACME: ordering a certificate');
      const accountKey = await this.#accountKey();
      const issued = await (this.#o.order ?? order)({
        directory: this.#o.config.directory,
        accountKey,
        email: e.wanted.email,
        domains: e.wanted.domains,
        challenge: this.#o.config.challenge,
        publish: (c) => this.#publish(c),
        unpublish: (c) => this.#unpublish(c),
      });
      const record: CertificateRecord = {
        domains: e.wanted.domains, cert: issued.cert, key: this.#o.seal.seal(issued.key),
        notBefore: issued.notBefore, notAfter: issued.notAfter, issuer: issued.issuer, issuedAt: Date.now(), by: this.#o.store.instanceId,
      };
      await this.#o.storage.set(keys.cert(e.wanted.id), JSON.stringify(record));
      await this.#saveAttempts(e, { ...EMPTY_ATTEMPTS, orders: [...recent(e.attempts.orders, started), started] });
      this.#install(e, record);
    } catch (err) {
      const problem = err instanceof AcmeOrderError ? err.problem : null;
      const message = (err as Error).message;
      const reached = !(err instanceof AcmeOrderError && err.unreachable);
      const failures = e.attempts.failures + 1;
      const delay = Math.min(this.#o.config.retryDelay * 2 ** Math.min(failures - 1, 30), HOUR);
      const orders = reached ? [...recent(e.attempts.orders, started), started] : recent(e.attempts.orders, started);
      log.error({ domains: e.wanted.domains, err: message, problem, failures, retryInMs: delay, directory: this.#o.config.directory }, 'ACME: order failed; the certificate in service (if any) stays');
      await this.#saveAttempts(e, { failures, nextAttempt: Date.now() + delay, orders, lastError: message, lastErrorAt: Date.now(), problem });
    } finally {
      clearInterval(keep);
      e.ordering = false;
    }
  }

  async #saveAttempts(e: Entry, attempts: AttemptsRecord): Promise<void> {
    e.attempts = attempts;
    await this.#o.storage.set(keys.attempts(e.wanted.id), JSON.stringify(attempts)).catch((err: Error) => {
      this.#o.log.warn({ err: err.message }, 'ACME: cannot store the order history');
    });
  }

  /** #accountKey reads the account key for the directory, or makes and stores one (one account for every instance). */
  async #accountKey(): Promise<string> {
    const key = keys.account(this.#o.config.directory);
    const stored = parse<AccountRecord>(await this.#o.storage.get(key));
    if (stored !== null) return this.#o.seal.open(stored.key);
    const pem = await newAccountKey();
    await this.#o.storage.set(key, JSON.stringify({ directory: this.#o.config.directory, key: this.#o.seal.seal(pem) } satisfies AccountRecord));
    return pem;
  }

  async #publish(c: AcmeChallenge): Promise<void> {
    if (c.type === 'http-01') {
      this.#tokens.set(c.token, c.keyAuthorization);
      await this.#o.store.setValue(keys.challenge(c.token), c.keyAuthorization, CHALLENGE_TTL);
      return;
    }
    this.#o.certificates.setChallenge(c.domain, c.cert, c.key);
    if (!this.#o.shared) return;
    await this.#o.store.setValue(keys.alpn(c.domain), JSON.stringify({ cert: c.cert, key: c.key }), CHALLENGE_TTL);
    // The other instances read TLS-ALPN-01 certificates once per interval: give them time before the CA connects.
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(this.#o.config.checkInterval * 1.5)));
  }

  async #unpublish(c: AcmeChallenge): Promise<void> {
    if (c.type === 'http-01') {
      this.#tokens.delete(c.token);
      await this.#o.store.deleteValue(keys.challenge(c.token));
      return;
    }
    this.#o.certificates.deleteChallenge(c.domain);
    if (this.#o.shared) await this.#o.store.deleteValue(keys.alpn(c.domain));
  }

  /** #syncAlpn serves the TLS-ALPN-01 certificates another instance published (this one is not ordering). */
  async #syncAlpn(): Promise<void> {
    if (this.#entries.some((e) => e.ordering)) return;
    for (const e of this.#entries) {
      for (const domain of e.wanted.domains) {
        const value = parse<{ cert: string; key: string }>(await this.#o.store.getValue(keys.alpn(domain)).catch(() => null));
        if (value !== null) {
          this.#o.certificates.setChallenge(domain, value.cert, value.key);
          this.#alpnServed.add(domain);
        } else if (this.#alpnServed.delete(domain)) {
          this.#o.certificates.deleteChallenge(domain);
        }
      }
    }
  }

  #warnIfExpiring(e: Entry, now: number): void {
    const c = e.installed;
    if (c === null || e.attempts.lastError === null || c.notAfter - now > WARN_BEFORE || now - e.lastWarned < HOUR) return;
    e.lastWarned = now;
    this.#o.log.error({ domains: e.wanted.domains, notAfter: new Date(c.notAfter).toISOString(), lastError: e.attempts.lastError }, 'ACME: certificate expires within 7 days and cannot be renewed');
  }

  /** status: one entry per certificate, for /status. */
  status(): Record<string, unknown>[] {
    return this.#entries.map((e) => {
      const c = e.installed;
      const renewAt = c === null ? null : c.notAfter - this.#o.config.renewBefore;
      const next = Math.max(renewAt ?? 0, e.attempts.nextAttempt);
      return {
        domains: e.wanted.domains,
        issuer: c?.issuer ?? null,
        notAfter: c === null ? null : new Date(c.notAfter).toISOString(),
        issuedAt: c === null ? null : new Date(c.issuedAt).toISOString(),
        serial: c === null ? null : serialOf(c.cert),
        nextRenewal: new Date(next === 0 ? Date.now() : next).toISOString(),
        failures: e.attempts.failures,
        lastError: e.attempts.lastError,
        lastErrorAt: e.attempts.lastErrorAt === null ? null : new Date(e.attempts.lastErrorAt).toISOString(),
        ordering: e.ordering,
      };
    });
  }

  /** expiries: each domain's certificate expiry (Unix seconds), for the metric. */
  expiries(): [string, number][] {
    const out: [string, number][] = [];
    for (const e of this.#entries) if (e.installed !== null) for (const d of e.wanted.domains) out.push([d, Math.floor(e.installed.notAfter / 1000)]);
    return out;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    await this.#running;
    if (this.#holder) await this.#o.store.releaseLease(ACME_LEASE).catch(() => undefined);
  }
}

function recent(orders: readonly number[], now: number): number[] {
  return orders.filter((t) => t > now - HOUR);
}

function serialOf(pem: string): string | null {
  try {
    return new X509Certificate(pem).serialNumber;
  } catch {
    return null;
  }
}
