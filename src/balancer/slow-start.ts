/**
 * Slow start: a backend that was just added or has just recovered receives
 * a share of traffic that grows linearly from SLOW_START_MIN_FACTOR of its
 * weight to its full weight over the `slowStart` window, so a cold backend
 * (empty caches, cold JIT, no pooled connections) is not flooded at once.
 *
 * Weighted policies call effectiveWeight at pick time rather than rebuilding
 * their state as the ramp progresses; it costs one comparison when slow
 * start is off and one subtraction once the window has passed.
 */
import type { Backend } from '../backends/backend.js';

/** SLOW_START_MIN_FACTOR is the share of its weight a backend gets the moment it becomes healthy. */
export const SLOW_START_MIN_FACTOR = 0.1;

/** slowStartFactor is the fraction (0.1 .. 1) of its weight a backend healthy since `healthySince` gets at `now`. */
export function slowStartFactor(healthySince: number, window: number, now: number): number {
  if (window <= 0) return 1;
  const elapsed = now - healthySince;
  if (elapsed >= window) return 1;
  if (elapsed <= 0) return SLOW_START_MIN_FACTOR;
  return SLOW_START_MIN_FACTOR + (1 - SLOW_START_MIN_FACTOR) * (elapsed / window);
}

/** effectiveWeight is the weight a policy uses now: `weight`, lowered while the backend is in its slow-start window. */
export function effectiveWeight(backend: Backend, window: number, now: number): number {
  if (window <= 0) return backend.weight;
  return backend.weight * slowStartFactor(backend.state.healthySince, window, now);
}
