/**
 * TLS termination on listeners: certificates are read and checked once (at
 * start, on reload, or when watched files change), never per handshake.
 * A handshake only looks up a prepared SecureContext by SNI name.
 *
 * A certificate that is missing, unreadable, not PEM, not matching its key,
 * expired or not yet valid is a ConfigError naming the listener, the key
 * path and the file: at start-up the balancer refuses to start, on reload
 * the reload is rejected and the previous certificates keep serving.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import tls, { type SecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';
import { ALPN_CHALLENGE, type DynamicCertificates } from '../core/certificates.js';
import { ConfigError, type ConfigProblem } from '../core/config-error.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';

type TlsListenerConfig = NonNullable<ListenerConfig['tls']>;

/** CertificateSummary describes one loaded certificate, for logs. */
export interface CertificateSummary {
  readonly file: string;
  readonly names: readonly string[];
  readonly validTo: string;
}

/**
 * ListenerCertificates is one immutable set of certificates for a listener:
 * the default (used when the client sends no SNI name or an unknown one)
 * and a context per name, exact or wildcard ("*.example.com").
 */
export class ListenerCertificates {
  constructor(
    /** defaults are the options of the server's default context (setSecureContext takes them). */
    readonly defaults: SecureContextOptions,
    readonly exact: ReadonlyMap<string, SecureContext>,
    /** wildcard maps "example.com" to the context of "*.example.com". */
    readonly wildcard: ReadonlyMap<string, SecureContext>,
    readonly summary: readonly CertificateSummary[],
  ) {}

  /** select returns the context for an SNI name, or undefined for the default one. */
  select(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

interface LoadedPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly names: string[];
  readonly validTo: string;
}

/** listenerLabel names a listener in messages: "listen[1] (0.0.0.0:8443)". */
export function listenerLabel(index: number, lc: ListenerConfig): string {
  return `listen[${index}] (${lc.host}:${lc.port})`;
}

function readPem(file: string, what: string, path: string, where: string, problems: ConfigProblem[]): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    problems.push({ source: where, path, message: `cannot read ${what} ${file}: ${reason}` });
    return undefined;
  }
}

/** namesOf lists the DNS names a certificate is for: its DNS subjectAltNames, else its CN. */
function namesOf(x509: X509Certificate): string[] {
  const names: string[] = [];
  for (const entry of (x509.subjectAltName ?? '').split(',')) {
    const e = entry.trim();
    if (e.startsWith('DNS:')) names.push(e.slice(4).toLowerCase());
  }
  if (names.length > 0) return names;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject);
  return cn === null ? [] : [cn[1]!.trim().toLowerCase()];
}

function loadPair(certFile: string, keyFile: string, path: string, where: string, now: number, problems: ConfigProblem[]): LoadedPair | undefined {
  const before = problems.length;
  const cert = readPem(certFile, 'certificate', `${path}.cert`, where, problems);
  const key = readPem(keyFile, 'private key', `${path}.key`, where, problems);
  if (cert === undefined || key === undefined) return undefined;
  let x509: X509Certificate | undefined;
  let keyObject: KeyObject | undefined;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    problems.push({ source: where, path: `${path}.cert`, message: `${certFile} is not a PEM certificate` });
  }
  try {
    keyObject = createPrivateKey(key);
  } catch (err) {
    const encrypted = /passphrase|encrypted/i.test((err as Error).message);
    problems.push({ source: where, path: `${path}.key`, message: `${keyFile} is not a PEM private key${encrypted ? ' (encrypted keys are not supported)' : ''}` });
  }
  if (x509 === undefined || keyObject === undefined) return undefined;
  if (!x509.checkPrivateKey(keyObject)) {
    problems.push({ source: where, path: `${path}.key`, message: `private key ${keyFile} does not match certificate ${certFile}` });
  }
  const validFrom = Date.parse(x509.validFrom);
  const validTo = Date.parse(x509.validTo);
  if (validTo < now) problems.push({ source: where, path: `${path}.cert`, message: `certificate ${certFile} expired on ${new Date(validTo).toISOString()}` });
  else if (validFrom > now) problems.push({ source: where, path: `${path}.cert`, message: `certificate ${certFile} is not valid before ${new Date(validFrom).toISOString()}` });
  if (problems.length > before) return undefined;
  return { cert, key, names: namesOf(x509), validTo: new Date(validTo).toISOString() };
}

/**
 * loadListenerCertificates reads and checks every certificate of one TLS
 * listener. It returns the problems instead of throwing, so that a caller
 * checking several listeners reports them all at once.
 */
export function loadListenerCertificates(config: TlsListenerConfig, index: number, lc: ListenerConfig, problems: ConfigProblem[], now = Date.now()): ListenerCertificates | undefined {
  const where = listenerLabel(index, lc);
  const before = problems.length;
  const base = `listen[${index}].tls`;
  const common: SecureContextOptions = { minVersion: config.minVersion };
  if (config.ciphers !== undefined) common.ciphers = config.ciphers;
  // A listener with `acme` may have no file certificate: its certificates come at run time.
  const pairs: [LoadedPair | undefined, string][] = config.cert === undefined || config.key === undefined ? [] : [[loadPair(config.cert, config.key, base, where, now, problems), config.cert]];
  config.certificates.forEach((c, i) => pairs.push([loadPair(c.cert, c.key, `${base}.certificates[${i}]`, where, now, problems), c.cert]));
  if (problems.length > before) return undefined;

  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  const summary: CertificateSummary[] = [];
  let defaults: SecureContextOptions | undefined;
  for (const [pair, file] of pairs) {
    const p = pair!;
    const options: SecureContextOptions = { ...common, cert: p.cert, key: p.key };
    let context: SecureContext;
    try {
      context = tls.createSecureContext(options);
    } catch (err) {
      // The files passed every check above, so what is left is the cipher list or the version.
      problems.push({ source: where, path: config.ciphers === undefined ? base : `${base}.ciphers`, message: `cannot use ${file}: ${(err as Error).message}` });
      return undefined;
    }
    defaults ??= options;
    // The first certificate naming a host wins: the default, then the list in order.
    for (const name of p.names) {
      if (name.startsWith('*.')) { if (!wildcard.has(name.slice(2))) wildcard.set(name.slice(2), context); }
      else if (!exact.has(name)) exact.set(name, context);
    }
    summary.push({ file, names: p.names, validTo: p.validTo });
  }
  return new ListenerCertificates(defaults ?? common, exact, wildcard, summary);
}

/**
 * RuntimeCertificates: what a listener with `tls.acme` serves besides its
 * files: the certificates obtained at run time (asked first, by SNI name)
 * and, with `alpnChallenges`, the TLS-ALPN-01 validation certificates.
 */
export interface RuntimeCertificates {
  readonly certificates: DynamicCertificates;
  readonly alpnChallenges: boolean;
}

/** TlsTermination is the live TLS state of one listener's server. */
export class TlsTermination {
  #certs: ListenerCertificates;
  #server: tls.Server | null = null;
  /** #alpnPending: the SNI name whose ClientHello just offered acme-tls/1 (see #alpn). */
  #alpnPending: string | null = null;

  constructor(readonly index: number, readonly listener: ListenerConfig, certs: ListenerCertificates, readonly runtime: RuntimeCertificates | null = null) {
    this.#certs = certs;
  }

  get certificates(): ListenerCertificates {
    return this.#certs;
  }

  /** serverOptions are the TLS options to create the listener's server with. */
  serverOptions(): TlsOptions {
    const options: TlsOptions = { ...this.#certs.defaults, SNICallback: this.#sni };
    if (this.runtime?.alpnChallenges === true) options.ALPNCallback = this.#alpn;
    return options;
  }

  /** attach remembers the server whose default context `replace` swaps. */
  attach(server: tls.Server): void {
    this.#server = server;
    // A TLS-ALPN-01 connection proves control of the name by its handshake alone: nothing is served on it.
    if (this.runtime?.alpnChallenges === true) server.on('secureConnection', (socket: tls.TLSSocket) => { if (socket.alpnProtocol === ALPN_CHALLENGE) socket.destroy(); });
  }

  /**
   * replace makes new handshakes use `certs`. Established connections keep
   * the session they negotiated: nothing is closed.
   */
  replace(certs: ListenerCertificates): void {
    this.#certs = certs;
    this.#server?.setSecureContext(certs.defaults);
  }

  // A falsy context makes Node use the server's default context. Run-time (ACME) certificates are
  // asked first: they exist only for the names the listener's `acme.domains` lists.
  readonly #sni = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    const runtime = this.runtime;
    if (runtime === null) {
      cb(null, this.#certs.select(servername));
      return;
    }
    const pending = this.#alpnPending;
    this.#alpnPending = null;
    const challenge = pending === servername ? runtime.certificates.challenge(servername) : undefined;
    cb(null, challenge ?? runtime.certificates.select(servername) ?? this.#certs.select(servername));
  };

  /**
   * #alpn picks the protocol when TLS-ALPN-01 is on (ALPNCallback replaces
   * the server's protocol list). OpenSSL calls it, then the SNI callback,
   * synchronously within the processing of one ClientHello, so remembering
   * the name here tells #sni to answer with the challenge certificate.
   * Other clients get http/1.1 when they offer it; a client offering
   * neither is refused (no_application_protocol).
   */
  readonly #alpn = ({ servername, protocols }: { servername: string; protocols: string[] }): string | undefined => {
    if (protocols.includes(ALPN_CHALLENGE) && this.runtime?.certificates.challenge(servername) !== undefined) {
      this.#alpnPending = servername;
      return ALPN_CHALLENGE;
    }
    this.#alpnPending = null;
    return protocols.includes('http/1.1') ? 'http/1.1' : undefined;
  };
}

/**
 * TlsListeners owns the TLS state of every listener of one balancer: it
 * loads certificates for start-up, prepares a checked replacement on reload
 * (applied only if the whole reload is accepted) and, with `watch`, reloads
 * when certificate files change.
 */
export class TlsListeners {
  readonly #live = new Map<number, TlsTermination>();
  readonly #watched = new Set<string>();
  #debounce: NodeJS.Timeout | null = null;
  #loaded = false;
  /** #current returns the listeners of the config in force (set while watching). */
  #current: (() => readonly ListenerConfig[]) | null = null;
  #interval = 1000;
  #settle = 200;

  /** runtime: the run-time certificates that the listeners with `tls.acme` serve (null: no ACME). */
  constructor(private readonly log: Logger, private readonly runtime: RuntimeCertificates | null = null) {}

  /**
   * load checks the certificates of every TLS listener before anything is
   * bound; it throws a ConfigError listing every problem.
   */
  load(listen: readonly ListenerConfig[]): void {
    const problems: ConfigProblem[] = [];
    const loaded: [number, ListenerConfig, ListenerCertificates | undefined][] = [];
    listen.forEach((lc, i) => {
      if (lc.tls !== undefined) loaded.push([i, lc, loadListenerCertificates(lc.tls, i, lc, problems)]);
    });
    if (problems.length > 0) throw new ConfigError(problems);
    for (const [i, lc, certs] of loaded) this.#live.set(i, new TlsTermination(i, lc, certs!, lc.tls?.acme !== undefined ? this.runtime : null));
    this.#loaded = true;
  }

  /** termination returns the TLS state of a listener (by its config object), if it has TLS. */
  termination(lc: ListenerConfig): TlsTermination | undefined {
    for (const t of this.#live.values()) if (t.listener === lc) return t;
    return undefined;
  }

  /**
   * prepare reads and checks the certificates `listen` names for the TLS
   * listeners already running and returns the function that swaps them in;
   * it throws a ConfigError (and changes nothing) when any is bad. Listeners
   * whose address changed keep their certificates until a restart.
   */
  prepare(listen: readonly ListenerConfig[]): () => void {
    // Before listen() nothing runs yet: listen() will load the config then in force.
    if (!this.#loaded) return () => undefined;
    const problems: ConfigProblem[] = [];
    const swaps: [TlsTermination, ListenerCertificates][] = [];
    listen.forEach((lc, i) => {
      if ((lc.tls !== undefined) !== this.#live.has(i)) this.log.warn({ listener: listenerLabel(i, lc) }, 'turning TLS on or off for a listener takes effect at the next restart');
    });
    for (const [i, live] of this.#live) {
      const lc = listen[i];
      if (lc === undefined || lc.tls === undefined || lc.host !== live.listener.host || lc.port !== live.listener.port) continue;
      const certs = loadListenerCertificates(lc.tls, i, lc, problems);
      if (certs !== undefined) swaps.push([live, certs]);
    }
    if (problems.length > 0) throw new ConfigError(problems);
    return () => {
      for (const [live, certs] of swaps) live.replace(certs);
      if (swaps.length > 0) this.log.info({ listeners: swaps.map(([l, c]) => ({ listener: listenerLabel(l.index, l.listener), certificates: c.summary })) }, 'TLS certificates reloaded');
      if (this.#watched.size > 0) this.#rewatch(listen);
    };
  }

  /** reloadFiles re-reads the current certificate files; a bad set is logged and the old one kept. */
  reloadFiles(listen: readonly ListenerConfig[]): boolean {
    try {
      this.prepare(listen)();
      return true;
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map((p) => `${p.source}: ${p.path}: ${p.message}`) : [(err as Error).message];
      this.log.error({ problems }, 'TLS certificates not reloaded; the previous ones keep serving');
      return false;
    }
  }

  /**
   * watch polls the certificate and key files (a stat every `intervalMs`,
   * which also sees files replaced by rename or symlink swaps, as Kubernetes
   * does with secrets) and reloads them shortly after a change, so that a
   * certificate and its key written one after the other load together.
   */
  watch(current: () => readonly ListenerConfig[], intervalMs = 1000, settleMs = 200): void {
    this.#current = current;
    this.#interval = intervalMs;
    this.#settle = settleMs;
    this.#rewatch(current());
  }

  readonly #onChange = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    if (this.#debounce !== null) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      if (this.#current !== null) this.reloadFiles(this.#current());
    }, this.#settle);
    this.#debounce.unref();
  };

  #rewatch(listen: readonly ListenerConfig[]): void {
    const files = new Set<string>();
    for (const i of this.#live.keys()) {
      const t = listen[i]?.tls;
      if (t === undefined) continue;
      if (t.cert !== undefined && t.key !== undefined) files.add(t.cert).add(t.key);
      for (const c of t.certificates) files.add(c.cert).add(c.key);
    }
    for (const f of this.#watched) if (!files.has(f)) { unwatchFile(f, this.#onChange); this.#watched.delete(f); }
    for (const f of files) {
      if (this.#watched.has(f)) continue;
      watchFile(f, { interval: this.#interval, persistent: false }, this.#onChange);
      this.#watched.add(f);
    }
  }

  /** summary lists every listener's certificates, for the start-up log. */
  summary(): { listener: string; certificates: readonly CertificateSummary[] }[] {
    return [...this.#live.values()].map((t) => ({ listener: listenerLabel(t.index, t.listener), certificates: t.certificates.summary }));
  }

  /** unwatch stops watching the files (`watch` turned off by a reload); the certificates stay. */
  unwatch(): void {
    this.#current = null;
    if (this.#debounce !== null) clearTimeout(this.#debounce);
    for (const f of this.#watched) unwatchFile(f, this.#onChange);
    this.#watched.clear();
  }

  close(): void {
    this.unwatch();
  }
}
