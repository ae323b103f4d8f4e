/**
 * installBalancing attaches the per-request parts of balancing that live
 * outside the picker: the hash-key function (only for policies that read
 * it) and sticky sessions (a picker wrapper plus a response-head hook). It
 * applies the config at start and again after every reload.
 */
import { randomBytes } from 'node:crypto';
import { clusterStickySecret } from '../core/cluster-env.js';
import type { FulcrumConfig } from '../config/schema.js';
import type { Fulcrum } from '../app/fulcrum.js';
import type { Picker } from './picker.js';
import { hashKeyFunction } from './hash-key.js';
import { getPickerFactory } from './registry.js';
import { StickySessions } from './sticky.js';

const unwrapped = (picker: Picker): Picker => picker;

export function installBalancing(balancer: Fulcrum): void {
  // One random secret for the life of the process, so that cookies survive reloads; in a
  // `workers: N` cluster, the primary's, so that every worker honours every worker's cookies.
  const processSecret = clusterStickySecret() ?? randomBytes(32);
  let hook: Fulcrum['runtime']['onResponseHead'] = null;

  const apply = (config: FulcrumConfig): void => {
    const factory = getPickerFactory(config.algorithm);
    balancer.hashKeyFn = factory?.needsHashKey === true ? hashKeyFunction(config.hashKey) : null;
    const runtime = balancer.runtime;
    if (config.sticky === undefined) {
      if (hook === null) return;
      if (runtime.onResponseHead === hook) runtime.onResponseHead = null;
      hook = null;
      runtime.setPickerWrapper(unwrapped);
      return;
    }
    const sticky = new StickySessions(config.sticky, config.sticky.secret ?? processSecret);
    runtime.setPickerWrapper((picker) => sticky.wrap(picker, balancer.pool.snapshot));
    hook = (ctx, headers) => sticky.onResponseHead(ctx, headers);
    runtime.onResponseHead = hook;
  };

  apply(balancer.config);
  balancer.reloadHooks.push((next) => apply(next));
}
