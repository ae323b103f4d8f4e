/**
 * One certificate order, through `acme-client` (the protocol: account,
 * order, authorizations, challenges, finalization, download). What is
 * Fulcrum's own here is how challenges are published: the callbacks hand
 * them to the manager, which makes every instance answer them.
 */
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Authorization } from 'acme-client';

type AcmeLib = typeof import('acme-client');

/** AcmeChallenge is what a validation of one domain needs: HTTP-01 token and answer, or the TLS-ALPN-01 certificate. */
export type AcmeChallenge =
  | { readonly type: 'http-01'; readonly domain: string; readonly token: string; readonly keyAuthorization: string }
  | { readonly type: 'tls-alpn-01'; readonly domain: string; readonly cert: string; readonly key: string };

export interface OrderRequest {
  readonly directory: string;
  readonly accountKey: string;
  readonly email: string;
  readonly domains: readonly string[];
  readonly challenge: 'http-01' | 'tls-alpn-01';
  /** publish makes a challenge answerable (on every instance) before the CA is told to validate it. */
  readonly publish: (c: AcmeChallenge) => Promise<void>;
  readonly unpublish: (c: AcmeChallenge) => Promise<void>;
}

export interface IssuedCertificate {
  /** cert is the PEM chain (leaf first), key the PEM private key. */
  readonly cert: string;
  readonly key: string;
  readonly notAfter: number;
  readonly notBefore: number;
  readonly issuer: string;
}

/**
 * AcmeOrderError is a failed order, with the CA's problem document
 * (RFC 7807) when the CA sent one, so that the log says what the CA said.
 */
export class AcmeOrderError extends Error {
  /** unreachable: no answer from the CA at all (such an attempt does not count against its rate limits). */
  constructor(message: string, readonly problem: Readonly<Record<string, unknown>> | null, readonly unreachable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AcmeOrderError';
  }
}

/** The last problem document the CA sent (acme-client keeps only its `detail`); orders run one at a time per process. */
let lastProblem: Record<string, unknown> | null = null;
/** The CA bundles configured in this process (several balancers in one process add theirs up). */
const bundles = new Set<string>();
let loading: Promise<AcmeLib> | null = null;
let loaded: AcmeLib | null = null;

/**
 * acmeLib loads acme-client on first use, not at start-up: with axios and
 * its crypto it is some 25 MiB of resident memory, which a balancer that
 * holds its certificates already (or has no TLS) should not carry.
 */
function acmeLib(): Promise<AcmeLib> {
  loading ??= import('acme-client').then((lib) => {
    setUp(lib);
    loaded = lib;
    return lib;
  });
  return loading;
}

/**
 * setUp sets acme-client's HTTP client once per process: a timeout, and no
 * retries of its own (the manager's back-off is the only retry, so a CA
 * that is down or rate-limits is not hammered), and the CA bundles.
 * acme-client has one HTTP client per process, so these settings are the
 * process's: each CA bundle configured is trusted from then on, besides
 * the system roots.
 */
function setUp(lib: AcmeLib): void {
  const client = lib.axios;
  client.defaults.timeout = 30_000;
  const settings = (client.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings;
  settings.retryMaxAttempts = 0;
  client.interceptors.response.use((response) => {
    const type = String(response.headers['content-type'] ?? '');
    if (type.includes('problem+json') && typeof response.data === 'object' && response.data !== null) lastProblem = response.data as Record<string, unknown>;
    return response;
  });
  lib.setLogger(() => undefined);
  trustBundles(lib);
}

function trustBundles(lib: AcmeLib): void {
  if (bundles.size > 0) lib.axios.defaults.httpsAgent = new https.Agent({ ca: [...rootCertificates, ...bundles], keepAlive: false });
}

/** configureClient adds a CA bundle to trust besides the system roots (read now, so that a bad path fails the start). */
export function configureClient(caBundle: string | undefined): void {
  if (caBundle === undefined) return;
  bundles.add(readFileSync(caBundle, 'utf8'));
  if (loaded !== null) trustBundles(loaded);
}

/** newAccountKey makes an ECDSA P-256 account key (PEM). */
export async function newAccountKey(): Promise<string> {
  const acme = await acmeLib();
  return (await acme.crypto.createPrivateEcdsaKey()).toString();
}

/** order obtains one certificate for `domains`; it throws an AcmeOrderError. */
export async function order(request: OrderRequest): Promise<IssuedCertificate> {
  const acme = await acmeLib();
  lastProblem = null;
  const client = new acme.Client({ directoryUrl: request.directory, accountKey: request.accountKey, backoffAttempts: 12, backoffMin: 250, backoffMax: 10_000 });
  const published: AcmeChallenge[] = [];
  try {
    const [key, csr] = await acme.crypto.createCsr({ commonName: request.domains[0]!, altNames: [...request.domains] }, await acme.crypto.createPrivateEcdsaKey());
    const cert = await client.auto({
      csr,
      email: request.email,
      termsOfServiceAgreed: true,
      challengePriority: [request.challenge],
      // The CA validates; a self-check from here would need this host to resolve and reach the domain.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        const c = await toChallenge(acme, authz, challenge, keyAuthorization);
        published.push(c);
        await request.publish(c);
      },
      challengeRemoveFn: async (authz, challenge, keyAuthorization) => {
        const domain = authz.identifier.value;
        const i = published.findIndex((c) => c.domain === domain && (c.type !== 'http-01' || c.token === (challenge as { token?: string }).token));
        if (i >= 0) await request.unpublish(published.splice(i, 1)[0]!).catch(() => undefined);
        void keyAuthorization;
      },
    });
    const info = acme.crypto.readCertificateInfo(cert);
    return { cert, key: key.toString(), notAfter: info.notAfter.getTime(), notBefore: info.notBefore.getTime(), issuer: info.issuer.commonName };
  } catch (err) {
    const problem = lastProblem as Record<string, unknown> | null;
    const message = err instanceof Error ? err.message : String(err);
    if (problem === null && unreachable(err)) throw new AcmeOrderError(`cannot reach the ACME server ${request.directory}`, null, true, { cause: err });
    throw new AcmeOrderError(message === '' && problem !== null ? String(problem.detail ?? problem.type) : message, problem, false, { cause: err });
  } finally {
    for (const c of published) await request.unpublish(c).catch(() => undefined);
  }
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/**
 * unreachable: the request got no answer. acme-client 5.4 reports that as a
 * TypeError from its response check (it reads `response.config` of a
 * response that never came), which is recognised here along with the
 * network errors themselves.
 */
function unreachable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (e instanceof TypeError && /reading 'config'/.test(e.message)) return true;
  }
  return false;
}

async function toChallenge(acme: AcmeLib, authz: Authorization, challenge: { type: string; token?: string }, keyAuthorization: string): Promise<AcmeChallenge> {
  const domain = authz.identifier.value;
  if (challenge.type === 'tls-alpn-01') {
    const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
    return { type: 'tls-alpn-01', domain, cert: cert.toString(), key: key.toString() };
  }
  return { type: 'http-01', domain, token: challenge.token ?? '', keyAuthorization };
}
