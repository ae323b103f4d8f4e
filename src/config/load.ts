/**
 * Loading configuration: read a YAML or JSON file, accept the seed projects'
 * formats, overlay environment variables and command-line flags, validate.
 * Precedence, highest first: flags, environment, file, defaults.
 */
import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type FulcrumConfig, type ServiceConfig } from './schema.js';
import { mixedPoolKeys, normalizeServices, type ParsedConfig } from './services.js';
import { TrustedProxies } from '../core/trusted-proxies.js';
import { isNormalized, markNormalized } from './normalized.js';
import { ConfigError, type ConfigProblem } from '../core/config-error.js';
import { algorithmNames } from './algorithms.js';

type Raw = Record<string, unknown>;

/** readConfigFile parses a file by extension: .yaml/.yml as YAML, .json as JSON. */
export function readConfigFile(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new ConfigError([{ source: file, path: '', message: `cannot read config: ${reason}` }]);
  }
  const ext = extname(file).toLowerCase();
  let doc: unknown;
  try {
    if (ext === '.json') doc = JSON.parse(text);
    else if (ext === '.yaml' || ext === '.yml') doc = parseYaml(text);
    else throw new Error(`unknown extension "${ext}": expected .yaml, .yml or .json`);
  } catch (err) {
    throw new ConfigError([{ source: file, path: '', message: `cannot parse: ${(err as Error).message.split('\n')[0]}` }]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError([{ source: file, path: '', message: 'expected a mapping of keys at the top level' }]);
  }
  return doc as Raw;
}

/** Aliases maps a key the user wrote to where it lives in the native form, to report errors in the user's words. */
type Aliases = Map<string, string>;

/**
 * applySeedAliases accepts the seed projects' formats unchanged:
 * `servers` for `backends`, top-level `port`/`host`, `healthCheckInterval`
 * (seconds), `healthCheckPath`, `healthCheckTimeout`, `strategy`.
 */
export function applySeedAliases(input: Raw): { raw: Raw; aliases: Aliases } {
  const raw: Raw = { ...input };
  const aliases: Aliases = new Map();
  const move = (from: string, to: string, into?: string): void => {
    if (!(from in raw)) return;
    const value = raw[from];
    delete raw[from];
    if (into === undefined) {
      if (!(to in raw)) raw[to] = value;
      aliases.set(to, from);
      return;
    }
    const section = (typeof raw[into] === 'object' && raw[into] !== null ? { ...(raw[into] as Raw) } : {}) as Raw;
    if (!(to in section)) section[to] = value;
    raw[into] = section;
    aliases.set(`${into}.${to}`, from);
  };
  move('servers', 'backends');
  move('strategy', 'algorithm');
  move('healthCheckInterval', 'interval', 'healthCheck');
  move('healthCheckPath', 'path', 'healthCheck');
  move('healthCheckTimeout', 'timeout', 'healthCheck');
  if ('port' in raw || 'host' in raw) {
    const listen = typeof raw.listen === 'object' && raw.listen !== null && !Array.isArray(raw.listen) ? { ...(raw.listen as Raw) } : {};
    if ('port' in raw) { if (!('port' in listen)) listen.port = raw.port; aliases.set('listen.port', 'port'); }
    if ('host' in raw) { if (!('host' in listen)) listen.host = raw.host; aliases.set('listen.host', 'host'); }
    delete raw.port;
    delete raw.host;
    if (!Array.isArray(raw.listen)) raw.listen = listen;
  }
  return { raw, aliases };
}

function formatPath(path: readonly (string | number)[], aliases: Aliases): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  for (const [native, written] of aliases) {
    if (out === native || out.startsWith(`${native}.`) || out.startsWith(`${native}[`)) return written + out.slice(native.length);
  }
  return out;
}

function valueAt(raw: unknown, path: readonly (string | number)[]): unknown {
  let v: unknown = raw;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** samePath: the two key paths are equal. */
function samePath(a: readonly (string | number)[], b: readonly (string | number)[]): boolean {
  return a.length === b.length && a.every((seg, i) => seg === b[i]);
}

/**
 * innermostIssues replaces every `invalid_union` issue by the issues of the
 * branch the user evidently meant, recursively, so that a mistake inside
 * one form of an alternative ("backends[0].weight") is reported at its own
 * key path with that form's expectation, not as "invalid value" on the whole
 * union. A branch that rejected the input's type at the union's own path
 * (a string branch given an object) was not meant; of the others, the one
 * that got deepest into the value wins. When every branch rejected the type,
 * the union issue stays, and is worded from the union's message or from the
 * types the branches expected. Generic over every union in the schema,
 * present and future (discriminated unions already report inside the
 * branch their discriminator picks).
 */
function innermostIssues(issues: readonly z.ZodIssue[]): z.ZodIssue[] {
  const out: z.ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code !== 'invalid_union' || issue.unionErrors.length === 0) {
      out.push(issue);
      continue;
    }
    const rejectsType = (branch: z.ZodError): boolean =>
      branch.issues.some((i) => samePath(i.path, issue.path) && ((i.code === 'invalid_type' && i.received !== 'undefined')
        || (i.code === 'invalid_literal' && typeof i.received !== typeof i.expected)));
    const meant = issue.unionErrors.filter((branch) => !rejectsType(branch));
    if (meant.length === 0) {
      out.push(issue);
      continue;
    }
    const depth = (branch: z.ZodError): number => Math.max(...branch.issues.map((i) => i.path.length));
    let best = meant[0]!;
    for (const branch of meant.slice(1)) {
      if (depth(branch) > depth(best) || (depth(branch) === depth(best) && branch.issues.length < best.issues.length)) best = branch;
    }
    out.push(...innermostIssues(best.issues));
  }
  return out;
}

/** unionExpectation words a union no branch of which takes the input's type: "expected a string or an object". */
function unionExpectation(issue: z.ZodInvalidUnionIssue): string {
  if (issue.message?.startsWith('expected') === true) return issue.message;
  const types = new Set<string>();
  for (const branch of issue.unionErrors) {
    for (const i of branch.issues) if (samePath(i.path, issue.path) && i.code === 'invalid_type') types.add(i.expected);
  }
  return types.size === 0 ? 'invalid value' : `expected ${[...types].join(' or ')}`;
}

function zodProblems(error: z.ZodError, source: string, aliases: Aliases, raw: unknown): ConfigProblem[] {
  return innermostIssues(error.issues).map((issue) => {
    let message = issue.message;
    const got = valueAt(raw, issue.path);
    const gotText = got === undefined ? '' : `, got ${JSON.stringify(got)}`;
    switch (issue.code) {
      case 'unrecognized_keys':
        message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
        break;
      case 'invalid_type':
        message = issue.received === 'undefined' ? `required: expected ${issue.expected}` : /^Expected /.test(message) ? `expected ${issue.expected}, got ${issue.received}`
          : message.startsWith('expected') && !message.includes('got') ? `${message}${gotText}` : message;
        break;
      case 'too_small':
        if (issue.type === 'number') message = `expected ${issue.inclusive ? 'at least' : 'more than'} ${issue.minimum}${gotText}`;
        else if (issue.type === 'array') message = `expected at least ${issue.minimum} item(s)`;
        else if (issue.type === 'string') message = `expected at least ${issue.minimum} characters`;
        break;
      case 'too_big':
        if (issue.type === 'number') message = `expected ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}${gotText}`;
        break;
      case 'invalid_enum_value':
        message = `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}${gotText}`;
        break;
      case 'invalid_union':
        message = `${unionExpectation(issue)}${gotText}`;
        break;
      case 'invalid_union_discriminator':
        message = `${got === undefined ? 'required: ' : ''}expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}${gotText}`;
        break;
      case 'invalid_literal':
        message = `expected ${JSON.stringify(issue.expected)}${gotText}`;
        break;
      default:
        if (issue.code === 'invalid_string' || (issue.code === 'custom' && !message.includes('got'))) message = `${message}${gotText}`;
    }
    if (issue.code === 'invalid_type' && issue.expected === 'integer') message = `expected an integer${gotText}`;
    return { source, path: formatPath(issue.path, aliases), message };
  });
}

/** semanticProblems finds what a schema cannot see: unknown algorithms, duplicate backends. */
function semanticProblems(config: FulcrumConfig, source: string, aliases: Aliases, named: boolean): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [name, service] of Object.entries(config.services)) {
    // Without `services`, the one service's keys are the top-level ones, and so are their paths.
    const at = (path: (string | number)[]): string => formatPath(named ? ['services', name, ...path] : path, aliases);
    problems.push(...serviceProblems(service, source, at));
  }
  for (const message of TrustedProxies.validate(config.trustedProxies)) {
    const [path, ...rest] = message.split(': ');
    problems.push({ source, path: path!, message: rest.join(': ') });
  }
  const listeners = new Set<string>();
  config.listen.forEach((l, i) => {
    const key = `${l.host}:${l.port}`;
    if (l.port !== 0 && listeners.has(key)) problems.push({ source, path: `listen[${i}].port`, message: `duplicate listener ${key}` });
    listeners.add(key);
    for (const message of TrustedProxies.validate(l.proxyProtocol?.trusted ?? [])) {
      const [path, ...rest] = message.split(': ');
      problems.push({ source, path: `listen[${i}].proxyProtocol.${path!.replace('trustedProxies', 'trusted')}`, message: rest.join(': ') });
    }
  });
  if (config.admin.port !== undefined && config.admin.port !== 0 && config.listen.some((l) => l.port === config.admin.port)) {
    problems.push({ source, path: 'admin.port', message: `admin port ${config.admin.port} is also a proxy listener port` });
  }
  return problems;
}

function serviceProblems(service: ServiceConfig, source: string, at: (path: (string | number)[]) => string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const algorithms = algorithmNames();
  if (!algorithms.includes(service.algorithm)) {
    problems.push({ source, path: at(['algorithm']), message: `unknown algorithm "${service.algorithm}": expected one of ${algorithms.join(', ')}` });
  }
  const ids = new Set<string>();
  const urls = new Set<string>();
  service.backends.forEach((b, i) => {
    if (b.id !== undefined) {
      if (ids.has(b.id)) problems.push({ source, path: at(['backends', i, 'id']), message: `duplicate backend id "${b.id}"` });
      ids.add(b.id);
    }
    const key = new URL(b.url).href;
    if (urls.has(key)) problems.push({ source, path: at(['backends', i, 'url']), message: `duplicate backend url "${b.url}"` });
    urls.add(key);
  });
  return problems;
}

/**
 * finish turns the schema's output into the normalized config: the
 * algorithm names in their canonical spelling, services and routes filled
 * in, and every cross-reference checked. Warnings are kept with the config.
 */
function finish(parsed: ParsedConfig, raw: Raw, source: string, aliases: Aliases): FulcrumConfig {
  parsed.algorithm = normalizeAlgorithmName(parsed.algorithm);
  if (parsed.services !== undefined) for (const s of Object.values(parsed.services)) s.algorithm = normalizeAlgorithmName(s.algorithm);
  const problems = mixedPoolKeys(raw, source);
  const normalized = normalizeServices(parsed, source);
  problems.push(...normalized.problems);
  const config: FulcrumConfig = { ...parsed, services: normalized.services, routes: normalized.routes };
  if (problems.length === 0) problems.push(...semanticProblems(config, source, aliases, parsed.services !== undefined));
  if (problems.length > 0) throw new ConfigError(problems);
  warningsOf.set(config, normalized.warnings);
  return markNormalized(config);
}

const warningsOf = new WeakMap<FulcrumConfig, readonly ConfigProblem[]>();

/** configWarnings are what is legal but probably a mistake (a route that never matches, an unused service). */
export function configWarnings(config: FulcrumConfig): readonly ConfigProblem[] {
  return warningsOf.get(config) ?? [];
}

/** normalizeAlgorithmName accepts the seeds' spellings: "round_robin", "RoundRobin", "leastconn". */
export function normalizeAlgorithmName(name: string): string {
  const kebab = name.trim().replace(/([a-z])([A-Z])/g, '$1-$2').replace(/[_\s]+/g, '-').toLowerCase();
  const aliases: Record<string, string> = {
    roundrobin: 'round-robin', rr: 'round-robin', leastconn: 'least-connections', 'least-conn': 'least-connections',
    'least-connection': 'least-connections', 'weighted-roundrobin': 'weighted-round-robin', wrr: 'weighted-round-robin',
    iphash: 'ip-hash', 'source': 'ip-hash', 'consistent-hashing': 'consistent-hash', 'least-request': 'p2c',
  };
  return aliases[kebab] ?? kebab;
}

/** validateConfig checks a raw document (already read) and returns the normalized config. */
export function validateConfig(input: unknown, source = 'config'): FulcrumConfig {
  if (isNormalized(input)) return input;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError([{ source, path: '', message: 'expected a mapping of keys at the top level' }]);
  }
  const { raw, aliases } = applySeedAliases(input as Raw);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(zodProblems(parsed.error, source, aliases, raw));
  return finish(parsed.data, raw, source, aliases);
}

/**
 * applyHealthFlags sets the health-check flags on every pool: the top-level
 * one, or each of `services` (where the top-level pool keys are not allowed).
 */
function applyHealthFlags(raw: Raw, flags: CliOverrides): void {
  const set: Raw = {};
  if (flags.healthPath !== undefined) set.path = flags.healthPath;
  if (flags.healthInterval !== undefined) set.interval = flags.healthInterval;
  if (flags.healthCheck === false) set.enabled = false;
  if (Object.keys(set).length === 0) return;
  const withFlags = (pool: Raw): Raw => ({ ...pool, healthCheck: { ...((pool.healthCheck as Raw | undefined) ?? {}), ...set } });
  const services = raw.services;
  if (typeof services === 'object' && services !== null && !Array.isArray(services)) {
    raw.services = Object.fromEntries(Object.entries(services as Raw).map(([name, s]) => [name, typeof s === 'object' && s !== null ? withFlags(s as Raw) : s]));
  } else {
    Object.assign(raw, withFlags(raw));
  }
}

/** CliOverrides are the command-line flags that override the file and environment. */
export interface CliOverrides {
  port?: number;
  host?: string;
  backends?: string[];
  algorithm?: string;
  logLevel?: string;
  accessLog?: boolean;
  adminPort?: number;
  /** workers: processes serving requests (`--workers`); 'auto' is one per CPU. */
  workers?: number | 'auto';
  /** healthPath, healthInterval, healthCheck: `--health-path`, `--health-interval`, `--no-health-check` (false). */
  healthPath?: string;
  healthInterval?: string;
  healthCheck?: boolean;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  flags?: CliOverrides;
}

export interface LoadedConfig {
  config: FulcrumConfig;
  /** file is the absolute path of the config file, when one was used (reload reads it again). */
  file?: string;
}

/**
 * loadConfig reads the file (flag -c, else FULCRUM_CONFIG), overlays the
 * environment (FULCRUM_PORT, FULCRUM_LOG_LEVEL, FULCRUM_ADMIN_TOKEN, REDIS_URL)
 * and the flags, then validates.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const flags = options.flags ?? {};
  const fileArg = options.file ?? (env.FULCRUM_CONFIG !== undefined && env.FULCRUM_CONFIG !== '' ? env.FULCRUM_CONFIG : undefined);
  const file = fileArg === undefined ? undefined : resolve(fileArg);
  const doc: Raw = file === undefined ? {} : readConfigFile(file);
  const source = fileArg ?? 'config';
  const { raw, aliases } = applySeedAliases(doc);

  const envProblems: ConfigProblem[] = [];
  const setListen = (key: 'port' | 'host', value: string | number): void => {
    if (Array.isArray(raw.listen)) {
      const first = { ...(raw.listen[0] as Raw) };
      first[key] = value;
      raw.listen = [first, ...raw.listen.slice(1)];
    } else if (typeof raw.listen === 'number') {
      raw.listen = { port: raw.listen, [key]: value };
    } else {
      raw.listen = { ...((raw.listen as Raw | undefined) ?? {}), [key]: value };
    }
  };
  if (env.FULCRUM_PORT !== undefined && env.FULCRUM_PORT !== '') {
    const p = Number(env.FULCRUM_PORT);
    if (!Number.isInteger(p) || p < 0 || p > 65535) envProblems.push({ source: 'environment', path: 'FULCRUM_PORT', message: `expected a port number, got ${JSON.stringify(env.FULCRUM_PORT)}` });
    else setListen('port', p);
  }
  if (env.FULCRUM_LOG_LEVEL) raw.logLevel = env.FULCRUM_LOG_LEVEL;
  if (env.FULCRUM_ADMIN_TOKEN) raw.admin = { ...((raw.admin as Raw | undefined) ?? {}), token: env.FULCRUM_ADMIN_TOKEN };
  if (env.REDIS_URL) {
    const state = { ...((raw.state as Raw | undefined) ?? {}) };
    if (state.store === undefined) state.store = 'redis';
    // The variable names the server(s) to use: it replaces the file's choice of mode, and keeps its other settings (prefix, TLS...).
    const { url: _url, sentinels: _sentinels, name: _name, cluster: _cluster, ...rest } = (state.redis as Raw | undefined) ?? {};
    state.redis = { ...rest, url: env.REDIS_URL };
    raw.state = state;
  }
  if (envProblems.length > 0) throw new ConfigError(envProblems);

  if (flags.port !== undefined) setListen('port', flags.port);
  if (flags.host !== undefined) setListen('host', flags.host);
  if (flags.backends !== undefined && flags.backends.length > 0) {
    raw.backends = flags.backends;
    aliases.delete('backends');
  }
  if (flags.algorithm !== undefined) raw.algorithm = flags.algorithm;
  if (flags.logLevel !== undefined) raw.logLevel = flags.logLevel;
  if (flags.accessLog !== undefined) raw.accessLog = flags.accessLog;
  if (flags.adminPort !== undefined) raw.admin = { ...((raw.admin as Raw | undefined) ?? {}), port: flags.adminPort };
  if (flags.workers !== undefined) raw.workers = flags.workers;
  applyHealthFlags(raw, flags);

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(zodProblems(parsed.error, source, aliases, raw));
  const config = finish(parsed.data, raw, source, aliases);
  return file === undefined ? { config } : { config, file };
}
