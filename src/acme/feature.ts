/**
 * installAcme: automatic certificates for the listeners with `tls.acme`
 * (docs/configuration.md, "Automatic certificates"). It does nothing, and
 * costs nothing, when no listener asks for one. It builds on the state
 * store (state/): the lease that makes one instance the one that orders,
 * the challenge tokens every instance answers and, with `storage: redis`,
 * the account and certificates themselves.
 */
import { Gauge } from 'prom-client';
import { resolve } from 'node:path';
import type { BalancerHost } from '../app/host.js';
import { acmeSchema, autoDomains, type AcmeConfig, type FulcrumConfig } from '../config/schema.js';
import { isFulcrumWorker } from '../core/cluster-env.js';
import { stateStoreOf } from '../state/install.js';
import { configureClient } from './issuer.js';
import { AcmeManager, type WantedCertificate } from './manager.js';
import { certificateId } from './records.js';
import { KeySeal, parseStorageKey } from './seal.js';
import { FileStorage, StoreStorage } from './storage.js';

/**
 * wantedCertificates lists the certificates the listeners ask for, one per
 * distinct domain list; `domains: auto` asks for one per exact route host
 * (as Caddy does: a host added later does not reissue the others, and a
 * name the CA refuses holds up no other).
 */
export function wantedCertificates(config: FulcrumConfig): WantedCertificate[] {
  const out = new Map<string, WantedCertificate>();
  const want = (domains: readonly string[], email: string): void => {
    const id = certificateId(domains);
    if (!out.has(id)) out.set(id, { id, domains: [...new Set(domains)], email });
  };
  for (const l of config.listen) {
    const a = l.tls?.acme;
    if (a === undefined) continue;
    if (a.domains === 'auto') for (const domain of autoDomains(config.routes).domains) want([domain], a.email);
    else want(a.domains, a.email);
  }
  return [...out.values()];
}

export function acmeConfigOf(config: FulcrumConfig): AcmeConfig {
  return config.acme ?? acmeSchema.parse({});
}

export function installAcme(balancer: BalancerHost): AcmeManager | null {
  const wanted = wantedCertificates(balancer.config);
  if (wanted.length === 0) return null;
  const store = stateStoreOf(balancer);
  if (store === undefined) throw new Error('the ACME feature needs the state store: install it first');
  const config = acmeConfigOf(balancer.config);
  const log = balancer.log.child({ component: 'acme' });
  configureClient(config.caBundle);
  const storage = config.storage === 'redis' ? new StoreStorage(store) : new FileStorage(resolve(config.storageDir));
  const manager = new AcmeManager({
    config,
    wanted,
    store,
    storage,
    seal: new KeySeal(config.storageKey === undefined ? null : parseStorageKey(config.storageKey)),
    certificates: balancer.certificates,
    log,
    shared: store.type === 'redis' || isFulcrumWorker(),
  });
  new Gauge({
    name: 'fulcrum_certificate_expiry_seconds', help: 'When the ACME certificate serving a domain expires (Unix time, seconds).', labelNames: ['domain'],
    registers: [balancer.metrics.registry], aggregator: 'max',
    collect() {
      this.reset();
      for (const [domain, at] of manager.expiries()) this.set({ domain }, at);
    },
  });
  balancer.addComponent({
    name: 'acme',
    // The plain listeners answer the CA's HTTP-01 validations through the manager.
    httpChallenges: () => (config.challenge === 'http-01' ? manager : null),
    status: (status) => {
      status.acme = { directory: config.directory, challenge: config.challenge, storage: config.storage, orderingInstance: manager.holder, certificates: manager.status() };
    },
    prepare: (next, previous) => {
      const wantedNext = wantedCertificates(next);
      const sameWanted = JSON.stringify(wantedNext) === JSON.stringify(wantedCertificates(previous));
      if (JSON.stringify(next.acme) !== JSON.stringify(previous.acme)) {
        return { commit: () => log.warn('ACME settings (the acme key) changed in the config; they take effect at the next restart') };
      }
      if (sameWanted) return null;
      // New domains (or route hosts under `domains: auto`) are ordered now; the CA, storage and challenge stay.
      return { commit: () => { log.info({ certificates: wantedNext.map((w) => w.domains) }, 'ACME: the certificates wanted changed'); manager.want(wantedNext); } };
    },
    close: () => manager.close(),
  });
  log.info({ directory: config.directory, challenge: config.challenge, storage: config.storage, certificates: wanted.map((w) => w.domains) }, 'ACME: automatic certificates on');
  if (balancer.config.listen.some((l) => l.tls?.acme?.domains === 'auto')) {
    const { skipped } = autoDomains(balancer.config.routes);
    if (skipped.length > 0) log.warn({ skipped }, 'ACME: domains auto leaves out route hosts it cannot order a certificate for');
  }
  manager.start();
  return manager;
}
