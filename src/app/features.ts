/**
 * installFeatures attaches the optional features (each in its own module)
 * to a balancer according to its config. Features hook in through the
 * balancer's extension points (filters, routes, status, reload and close
 * hooks) so that the core knows none of them.
 */
import type { Fulcrum } from './fulcrum.js';
import { installAcme } from '../acme/feature.js';
import { installAdminApi } from '../admin/api.js';
import { installDashboard } from '../admin/dashboard/index.js';
import { installConfigWatch } from '../admin/watch.js';
import { installDiscovery } from '../discovery/manager.js';
import { installRateLimit } from '../ratelimit/feature.js';
import { installStateStore } from '../state/install.js';

export function installFeatures(balancer: Fulcrum): void {
  // The state store (memory, or Redis shared by many instances); installed first so that it closes last.
  installStateStore(balancer);
  // Automatic certificates (listen[].tls.acme): on the state store's lease, tokens and (with redis) values.
  installAcme(balancer);
  // DNS and Kubernetes discovery: started now, re-read on reload, stopped on close.
  installDiscovery(balancer);
  // Rate limiting: a request filter when `rateLimit` is configured, rebuilt on reload.
  installRateLimit(balancer);
  // Admin API (/admin/*, behind the token), the live dashboard, and `watch: true`.
  installAdminApi(balancer);
  installDashboard(balancer);
  installConfigWatch(balancer);
}
