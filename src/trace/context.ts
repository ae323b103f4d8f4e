/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading the
 * client's `traceparent` and `tracestate`, and writing the `traceparent`
 * a backend gets. Pure functions on strings, so that the rules can be
 * tested on their own (test/unit/trace-context.test.ts).
 *
 * What is not valid is not forwarded: a malformed `traceparent` (or one of
 * the all-zero ids the spec forbids) starts a new trace, and a `tracestate`
 * that breaks its grammar, or comes without a valid `traceparent`, is
 * dropped whole (the spec allows dropping; passing on a broken one would
 * make every hop after Fulcrum guess).
 */

/** RemoteParent is a valid incoming traceparent (and tracestate, '' when none or dropped). */
export interface RemoteParent {
  readonly traceId: string;
  readonly spanId: string;
  /** sampled: the client's sampled flag (bit 0 of trace-flags). */
  readonly sampled: boolean;
  readonly traceState: string;
}

const HEX = /^[0-9a-f]+$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/**
 * parseTraceparent reads a traceparent value (version 00, and, as the spec
 * asks of a version-00 parser, a higher version whose first four fields
 * have the version-00 shape). Null when it is not valid.
 */
export function parseTraceparent(value: string): { traceId: string; spanId: string; sampled: boolean } | null {
  const v = value.trim();
  if (v.length < 55 || v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return null;
  const version = v.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return null;
  // Version 00 is exactly 55 characters; a later version may add fields after a "-".
  if (version === '00' ? v.length !== 55 : v.length > 55 && v[55] !== '-') return null;
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(spanId) || !HEX.test(flags)) return null;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return null;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

/** A tracestate key: simple (lcalpha then up to 255 of lcalpha, digits, _-*\/) or multi-tenant (tenant@system). */
const KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
/** A tracestate value: up to 256 printable ASCII characters except "," and "=", not ending in a space. */
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
/** The spec's limit on list members. */
const MAX_MEMBERS = 32;

/**
 * validTracestate returns the tracestate list with optional whitespace
 * around members removed, or null when any member breaks the grammar, a
 * key repeats, or there are more than 32 members. Empty members (",,")
 * are allowed and dropped, as the spec says.
 */
export function validTracestate(value: string): string | null {
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of value.split(',')) {
    const member = raw.trim();
    if (member === '') continue;
    const eq = member.indexOf('=');
    if (eq <= 0) return null;
    const key = member.slice(0, eq);
    const val = member.slice(eq + 1);
    if (!KEY.test(key) || !VALUE.test(val) || keys.has(key)) return null;
    keys.add(key);
    members.push(member);
  }
  if (members.length > MAX_MEMBERS) return null;
  return members.join(',');
}

/**
 * remoteParent reads the trace context of a request's raw headers: its
 * traceparent when valid (a repeated traceparent is invalid), and its
 * tracestate (several fields combine into one list) when that is valid too.
 */
export function remoteParent(raw: readonly string[]): RemoteParent | null {
  let parent: string | undefined;
  let repeated = false;
  let state: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 11 && name.toLowerCase() === 'traceparent') {
      if (parent !== undefined) repeated = true;
      parent = raw[i + 1]!;
    } else if (name.length === 10 && name.toLowerCase() === 'tracestate') {
      state = state === undefined ? raw[i + 1]! : `${state},${raw[i + 1]!}`;
    }
  }
  if (parent === undefined || repeated) return null;
  const ids = parseTraceparent(parent);
  if (ids === null) return null;
  return { ...ids, traceState: state === undefined ? '' : validTracestate(state) ?? '' };
}

/** formatTraceparent writes a version-00 traceparent. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
