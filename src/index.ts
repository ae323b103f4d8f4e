/**
 * Fulcrum as a library:
 *
 *   import { createBalancer } from 'fulcrum';
 *   const lb = createBalancer({ listen: 8080, backends: ['http://127.0.0.1:8081'] });
 *   await lb.listen();
 *   ...
 *   await lb.close();
 */
import { Fulcrum, type FulcrumOptions } from './app/fulcrum.js';
import type { FulcrumConfig, FulcrumConfigInput } from './config/schema.js';
import { installFeatures } from './app/features.js';

export { Fulcrum, type FulcrumOptions, type ReloadResult, type ListenAddress } from './app/fulcrum.js';
export type { FulcrumConfig, FulcrumConfigInput, BackendConfig } from './config/schema.js';
export { loadConfig, validateConfig } from './config/load.js';
export { ConfigError, type ConfigProblem } from './core/config-error.js';
export type { Backend, BackendState } from './backends/backend.js';
export { Reason, reasonNames } from './backends/reasons.js';
export type { Picker, PickerFactory, PickContext } from './balancer/picker.js';
export { registerPicker, knownAlgorithms } from './balancer/registry.js';
export { FulcrumError, ERRORS, type ErrorCode } from './core/errors.js';
export { requestChannel, healthChannel, poolChannel, spanChannel, type RequestEvent, type HealthEvent, type SpanEvent, type SpanAttributes } from './core/events.js';

/**
 * createBalancer validates the config (throwing a ConfigError listing every
 * problem) and returns a balancer, not yet listening.
 */
export function createBalancer(config: FulcrumConfigInput | FulcrumConfig, options: FulcrumOptions = {}): Fulcrum {
  const balancer = new Fulcrum(config, options);
  installFeatures(balancer);
  return balancer;
}
