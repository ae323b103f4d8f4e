/**
 * TLS to backends (https:// URLs): certificates are verified against the
 * system CAs or a configured `ca` bundle, a client certificate may be
 * presented (mTLS), `servername` overrides the SNI name and the name the
 * certificate is checked against, and `insecureSkipVerify` turns
 * verification off (with a warning). `backendTls` holds the defaults; a
 * backend's `tls` overrides them field by field.
 *
 * Files are read when the config is loaded or reloaded, never on the
 * request path. The proxy's pools and the health checks take their options
 * from here, so both trust the same certificates.
 */
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { buildConnector } from 'undici';
import type { Backend } from '../backends/backend.js';
import { ConfigError, type ConfigProblem } from '../core/config-error.js';
import type { FulcrumConfig } from '../config/schema.js';
import type { Logger } from '../observe/log.js';
import type { ConnectionOptions } from 'node:tls';
import { FulcrumError } from '../core/errors.js';

type TlsClientConfig = FulcrumConfig['backendTls'];
type BackendTlsConfig = Partial<TlsClientConfig>;

/** BackendTlsOptions are the options given to tls.connect for a backend. */
export interface BackendTlsOptions {
  readonly rejectUnauthorized: boolean;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
}

/**
 * sniName is the name sent as SNI and checked against the backend's
 * certificate: `servername` when set, else the backend URL's host name,
 * none for an IP address (the certificate is then checked for that IP).
 * Never the client's Host header: that is the site, not the backend.
 */
export function sniName(options: BackendTlsOptions, hostname: string): string | undefined {
  if (options.servername !== undefined) return options.servername;
  const host = hostname.replace(/^\[|\]$/g, '');
  return isIP(host) === 0 ? host : undefined;
}

/**
 * tlsConnector builds undici's connect function for one TLS profile. undici
 * would otherwise take the SNI name from each request's Host header (and
 * reconnect whenever it changes); the proxy passes a constant per backend
 * and this connector decides the name from the settings (sniName).
 */
export function tlsConnector(options: BackendTlsOptions, timeout: number): buildConnector.connector {
  const connect = buildConnector({ ...options, timeout });
  return (opts, callback) => connect({ ...opts, servername: sniName(options, opts.hostname) }, callback);
}

/** FAILURE_LOG_INTERVAL_MS: a backend failing every handshake is logged at most this often. */
const FAILURE_LOG_INTERVAL_MS = 10_000;

function effective(global: TlsClientConfig, own: BackendTlsConfig | undefined): TlsClientConfig {
  if (own === undefined) return global;
  return {
    ca: own.ca ?? global.ca,
    cert: own.cert ?? global.cert,
    key: own.key ?? global.key,
    servername: own.servername ?? global.servername,
    insecureSkipVerify: own.insecureSkipVerify ?? global.insecureSkipVerify,
  };
}

function hint(code: string): string {
  switch (code) {
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE': case 'UNABLE_TO_GET_ISSUER_CERT': case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN': case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'the backend certificate is not signed by a trusted CA: set backendTls.ca (or tls.ca on the backend) to the CA bundle that signed it';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'the backend certificate is not for this host name: set tls.servername (or backendTls.servername) to a name it is for';
    case 'CERT_HAS_EXPIRED':
      return 'the backend certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'the backend certificate is not valid yet (check the clocks)';
    default:
      return 'check the backend TLS settings (backendTls, tls on the backend)';
  }
}

/**
 * BackendTls is the TLS configuration of all backends for one config:
 * files read once, options deduplicated into profiles (backends with the
 * same effective settings share one options object).
 */
export class BackendTls {
  readonly #global: TlsClientConfig;
  readonly #files: Map<string, Buffer>;
  readonly #profiles = new Map<string, BackendTlsOptions>();
  readonly #byBackend = new WeakMap<Backend['config'], BackendTlsOptions>();
  readonly #lastFailureLog = new Map<string, number>();
  /** fingerprint changes when any setting or file content changes; equal fingerprints mean equal TLS behaviour. */
  readonly fingerprint: string;

  private constructor(global: TlsClientConfig, files: Map<string, Buffer>, fingerprint: string, private readonly log: Logger) {
    this.#global = global;
    this.#files = files;
    this.fingerprint = fingerprint;
  }

  /**
   * load reads and checks every file `backendTls` and the backends' `tls`
   * name; it throws a ConfigError listing every problem.
   */
  static load(config: Pick<FulcrumConfig, 'backendTls' | 'backends'>, log: Logger): BackendTls {
    const problems: ConfigProblem[] = [];
    const files = new Map<string, Buffer>();
    const hash = createHash('sha256').update(JSON.stringify(config.backendTls));
    const check = (tls: BackendTlsConfig, path: string): void => {
      const read = (field: 'ca' | 'cert' | 'key'): Buffer | undefined => {
        const file = tls[field];
        if (file === undefined) return undefined;
        const cached = files.get(file);
        if (cached !== undefined) return cached;
        try {
          const buf = readFileSync(file);
          files.set(file, buf);
          hash.update(file).update(buf);
          return buf;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          problems.push({ source: 'config', path: `${path}.${field}`, message: `cannot read ${file}: ${code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (err as Error).message}` });
          return undefined;
        }
      };
      const ca = read('ca');
      const cert = read('cert');
      const key = read('key');
      if (ca !== undefined) {
        try { new X509Certificate(ca); } catch { problems.push({ source: 'config', path: `${path}.ca`, message: `${tls.ca} is not a PEM certificate` }); }
      }
      if ((tls.cert === undefined) !== (tls.key === undefined)) {
        problems.push({ source: 'config', path: `${path}.${tls.cert === undefined ? 'cert' : 'key'}`, message: 'a client certificate needs both cert and key' });
      } else if (cert !== undefined && key !== undefined) {
        try {
          if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) problems.push({ source: 'config', path: `${path}.key`, message: `private key ${tls.key} does not match certificate ${tls.cert}` });
        } catch {
          problems.push({ source: 'config', path: path, message: `${tls.cert} and ${tls.key} must be a PEM certificate and its private key` });
        }
      }
    };
    check(config.backendTls, 'backendTls');
    config.backends.forEach((b, i) => {
      if (b.tls === undefined) return;
      hash.update(`${i}:${JSON.stringify(b.tls)}`);
      check(effective(config.backendTls, b.tls), `backends[${i}].tls`);
    });
    if (problems.length > 0) throw new ConfigError(problems);
    const out = new BackendTls(config.backendTls, files, hash.digest('hex'), log);
    if (config.backendTls.insecureSkipVerify) log.warn('backendTls.insecureSkipVerify is on: certificates of https backends are not verified');
    return out;
  }

  /** optionsFor returns the connect options of an https backend (cached: one object per distinct profile). */
  optionsFor(backend: Backend): BackendTlsOptions {
    const cached = this.#byBackend.get(backend.config);
    if (cached !== undefined) return cached;
    const tls = effective(this.#global, backend.config.tls);
    const key = JSON.stringify([tls.ca, tls.cert, tls.key, tls.servername, tls.insecureSkipVerify]);
    let options = this.#profiles.get(key);
    if (options === undefined) {
      options = {
        rejectUnauthorized: !tls.insecureSkipVerify,
        ...(tls.ca === undefined ? {} : { ca: this.#file(tls.ca) }),
        ...(tls.cert === undefined ? {} : { cert: this.#file(tls.cert) }),
        ...(tls.key === undefined ? {} : { key: this.#file(tls.key) }),
        ...(tls.servername === undefined ? {} : { servername: tls.servername }),
      };
      this.#profiles.set(key, options);
      if (tls.insecureSkipVerify && !this.#global.insecureSkipVerify) {
        this.log.warn({ backend: backend.id, url: backend.url.href }, 'TLS verification to backend is disabled (tls.insecureSkipVerify)');
      }
    }
    this.#byBackend.set(backend.config, options);
    return options;
  }

  /** connectOptionsFor: tls.connect options for a backend, with its SNI name decided by sniName (HTTP/2 client, checks). */
  connectOptionsFor(backend: Backend): ConnectionOptions {
    const options = this.optionsFor(backend);
    const servername = sniName(options, backend.url.hostname);
    return servername === undefined ? { ...options } : { ...options, servername };
  }

  /** #file returns a file read at load; a backend added at run time (admin API) may name a new one, read once here. */
  #file(path: string): Buffer {
    let buf = this.#files.get(path);
    if (buf === undefined) {
      try {
        buf = readFileSync(path);
      } catch (err) {
        throw new FulcrumError('FULCRUM_ERR_UPSTREAM_TLS', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      this.#files.set(path, buf);
    }
    return buf;
  }

  /**
   * reportFailure logs a failed handshake with a backend, saying what to
   * change; at most once per backend every 10 seconds, since a backend with
   * a bad certificate fails every request.
   */
  reportFailure(backend: Backend, error: FulcrumError): void {
    const now = Date.now();
    const last = this.#lastFailureLog.get(backend.id);
    if (last !== undefined && now - last < FAILURE_LOG_INTERVAL_MS) return;
    this.#lastFailureLog.set(backend.id, now);
    const cause = error.cause as NodeJS.ErrnoException | undefined;
    const code = cause?.code ?? '';
    this.log.error({ backend: backend.id, url: backend.url.href, code, error: cause?.message ?? error.message, hint: hint(code) }, 'TLS handshake with backend failed');
  }
}
