/**
 * A brand for configs that went through validation, so that a normalized
 * config (durations in ms) is never validated again (where "10000" would
 * be read as seconds).
 */
import type { FulcrumConfig } from './schema.js';

const NORMALIZED = Symbol.for('fulcrum.config.normalized');

export function markNormalized(config: FulcrumConfig): FulcrumConfig {
  Object.defineProperty(config, NORMALIZED, { value: true, enumerable: false });
  return config;
}

export function isNormalized(value: unknown): value is FulcrumConfig {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[NORMALIZED] === true;
}
