/**
 * Certificates obtained at run time (by the ACME feature) for the TLS
 * listeners, and the challenges a certificate authority checks before it
 * issues one. They live in core/ because two layers that must not know each
 * other meet here: the feature that obtains certificates writes them, the
 * listeners read them at handshake time, and neither imports the other.
 *
 * Everything a handshake reads is prepared in advance: a SecureContext per
 * certificate, built once when the certificate is set, never per handshake.
 */
import tls, { type SecureContext } from 'node:tls';

/** ALPN_CHALLENGE is the ALPN protocol of TLS-ALPN-01 validations (RFC 8737). */
export const ALPN_CHALLENGE = 'acme-tls/1';

/** HTTP_CHALLENGE_PREFIX is where HTTP-01 validations look (RFC 8555 8.3). */
export const HTTP_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

/** HttpChallengeResponder answers HTTP-01 validations: the key authorization of a token, or null for an unknown one. */
export interface HttpChallengeResponder {
  keyAuthorization(token: string): Promise<string | null>;
}

interface Entry {
  readonly names: readonly string[];
  readonly context: SecureContext;
}

/**
 * DynamicCertificates holds the run-time certificates of one balancer, by
 * id (an ACME certificate's id is its domain list), and the TLS-ALPN-01
 * challenge certificates while validations are pending. A listener with
 * `tls.acme` asks it first, by SNI name; exact names only (ACME here orders
 * no wildcards, which need DNS-01).
 */
export class DynamicCertificates {
  readonly #entries = new Map<string, Entry>();
  #byName = new Map<string, SecureContext>();
  readonly #challenges = new Map<string, SecureContext>();

  /**
   * set installs (or replaces) a certificate: new handshakes use it at once,
   * established connections keep the session they negotiated. Throws when
   * the PEM pair is unusable, before anything changes.
   */
  set(id: string, names: readonly string[], certPem: string, keyPem: string): void {
    const context = tls.createSecureContext({ cert: certPem, key: keyPem });
    this.#entries.set(id, { names: names.map((n) => n.toLowerCase()), context });
    this.#index();
  }

  delete(id: string): void {
    if (this.#entries.delete(id)) this.#index();
  }

  /** select returns the context for an SNI name, or undefined when no run-time certificate covers it. */
  select(servername: string): SecureContext | undefined {
    return this.#byName.size === 0 ? undefined : this.#byName.get(servername.toLowerCase());
  }

  /** setChallenge serves a TLS-ALPN-01 certificate for `name` to clients asking for acme-tls/1. */
  setChallenge(name: string, certPem: string, keyPem: string): void {
    this.#challenges.set(name.toLowerCase(), tls.createSecureContext({ cert: certPem, key: keyPem }));
  }

  deleteChallenge(name: string): void {
    this.#challenges.delete(name.toLowerCase());
  }

  /** challenge returns the TLS-ALPN-01 context for a name, if a validation is pending. */
  challenge(servername: string): SecureContext | undefined {
    return this.#challenges.size === 0 ? undefined : this.#challenges.get(servername.toLowerCase());
  }

  get size(): number {
    return this.#entries.size;
  }

  // One map from name to context, rebuilt on change (rare), so that a handshake does one lookup.
  #index(): void {
    const byName = new Map<string, SecureContext>();
    for (const e of this.#entries.values()) for (const n of e.names) if (!byName.has(n)) byName.set(n, e.context);
    this.#byName = byName;
  }
}
