import type { FulcrumConfig } from '../config/schema.js';

/** LimitsSource gives the limits in force; listeners read it on each use, so that a reload applies. */
export interface LimitsSource {
  readonly limits: FulcrumConfig['limits'];
}
