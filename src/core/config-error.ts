/**
 * The error a bad configuration raises, wherever it is found: in the file
 * (config/), or later in what the file names (listener certificates, backend
 * TLS files). It lists every problem, not just the first.
 */

/** ConfigProblem is one thing wrong with a configuration, located precisely. */
export interface ConfigProblem {
  /** source is the file path, or "flags", "environment" or "config" for a library call. */
  readonly source: string;
  /** path is the key path, e.g. "backends[0].url"; empty for the whole document. */
  readonly path: string;
  readonly message: string;
}

/** ConfigError carries every problem found, not just the first. */
export class ConfigError extends Error {
  readonly code = 'FULCRUM_ERR_CONFIG';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  return p.path === '' ? `${p.source}: ${p.message}` : `${p.source}: ${p.path}: ${p.message}`;
}
