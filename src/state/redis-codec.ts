/**
 * How shared health and backend changes are written in Redis (hash values
 * and pub/sub messages): JSON, with health reasons as names so that
 * `redis-cli HGETALL` is readable. Decoding checks every field, because
 * anything with access to the Redis server could write there. An entry
 * without `service` was written before every service was shared: it is the
 * service `default`'s.
 */
import { reasonBits, reasonNames } from '../backends/reasons.js';
import { DEFAULT_SERVICE } from '../config/services.js';
import type { BackendOverride, SharedBackendState, SharedHealth } from './store.js';

type Json = Record<string, unknown>;

/** Message is one pub/sub message on the events channel. */
export type Message =
  | { readonly kind: 'health'; readonly from: string; readonly health: SharedHealth }
  | { readonly kind: 'backend'; readonly from: string; readonly override: BackendOverride };

export function encodeHealth(h: SharedHealth): Json {
  return {
    service: h.service, url: h.url, reasons: reasonNames(h.reasons), lastCheck: h.lastCheck, lastCheckOk: h.lastCheckOk,
    lastCheckError: h.lastCheckError, since: h.since, by: h.by,
  };
}

export function decodeHealth(v: unknown): SharedHealth | null {
  if (!isObject(v)) return null;
  const service = serviceOf(v);
  if (service === null || typeof v.url !== 'string' || !Array.isArray(v.reasons) || typeof v.since !== 'number' || typeof v.by !== 'string') return null;
  if (!nullOr(v.lastCheck, 'number') || !nullOr(v.lastCheckOk, 'boolean') || !nullOr(v.lastCheckError, 'string')) return null;
  return {
    service,
    url: v.url,
    reasons: reasonBits(v.reasons.filter((r): r is string => typeof r === 'string')),
    lastCheck: v.lastCheck as number | null,
    lastCheckOk: v.lastCheckOk as boolean | null,
    lastCheckError: v.lastCheckError as string | null,
    since: v.since,
    by: v.by,
  };
}

const STATES: readonly SharedBackendState[] = ['enabled', 'draining', 'disabled'];

export function encodeOverride(o: BackendOverride): Json {
  return { ...o };
}

export function decodeOverride(v: unknown): BackendOverride | null {
  if (!isObject(v)) return null;
  const service = serviceOf(v);
  if (service === null || typeof v.url !== 'string' || typeof v.present !== 'boolean' || typeof v.drain !== 'boolean') return null;
  if (typeof v.at !== 'number' || typeof v.by !== 'string' || !nullOr(v.weight, 'number')) return null;
  if (v.config !== null && !isObject(v.config)) return null;
  if (v.state !== null && !STATES.includes(v.state as SharedBackendState)) return null;
  return {
    service, url: v.url, present: v.present, config: v.config as Json | null, weight: v.weight as number | null,
    state: v.state as SharedBackendState | null, drain: v.drain, at: v.at, by: v.by,
  };
}

export function encodeMessage(m: Message): string {
  return JSON.stringify(m.kind === 'health'
    ? { kind: m.kind, from: m.from, health: encodeHealth(m.health) }
    : { kind: m.kind, from: m.from, override: encodeOverride(m.override) });
}

export function decodeMessage(text: string): Message | null {
  const v = parseJson(text);
  if (!isObject(v) || typeof v.from !== 'string') return null;
  if (v.kind === 'health') {
    const health = decodeHealth(v.health);
    return health === null ? null : { kind: 'health', from: v.from, health };
  }
  if (v.kind === 'backend') {
    const override = decodeOverride(v.override);
    return override === null ? null : { kind: 'backend', from: v.from, override };
  }
  return null;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** serviceOf reads an entry's service: absent means `default` (the older format), anything but a string is invalid (null). */
function serviceOf(v: Json): string | null {
  if (v.service === undefined) return DEFAULT_SERVICE;
  return typeof v.service === 'string' ? v.service : null;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nullOr(v: unknown, type: 'number' | 'string' | 'boolean'): boolean {
  return v === null || typeof v === type;
}
