/**
 * Request paths as routes see them: normalized as RFC 3986 §6.2.2 says, so
 * that a path cannot be spelled past a rule. Percent-encoded unreserved
 * characters are decoded (`%7E` → `~`, `%2E` → `.`), other escapes keep
 * their encoding in upper-case hex, and dot segments are removed (§5.2.4).
 * `%2F` and `%5C` stay encoded: decoding them would change which segments
 * a backend sees. The backend receives the path the route decided on.
 */

/** HEX maps a character code to its hex digit value, or -1. */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

/** UNRESERVED: ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 3986 §2.3). */
function unreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

const UPPER_HEX = '0123456789ABCDEF';

/**
 * normalizePath returns the normalized form of an origin-form path (no
 * query), or null when it holds an invalid percent-encoding. A path with
 * neither "%" nor "/." is already normal and is returned as it is, without
 * a copy (the common case costs two scans).
 */
export function normalizePath(path: string): string | null {
  const hasEscape = path.indexOf('%') !== -1;
  if (!hasEscape && path.indexOf('/.') === -1) return path;
  let decoded = path;
  if (hasEscape) {
    let out = '';
    let from = 0;
    for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i)) {
      const hi = i + 1 < path.length ? hexAt(path, i + 1) : -1;
      const lo = i + 2 < path.length ? hexAt(path, i + 2) : -1;
      if (hi < 0 || lo < 0) return null;
      const byte = hi * 16 + lo;
      out += path.slice(from, i);
      out += unreserved(byte) ? String.fromCharCode(byte) : `%${UPPER_HEX[hi]}${UPPER_HEX[lo]}`;
      i += 3;
      from = i;
    }
    decoded = out + path.slice(from);
  }
  return decoded.indexOf('/.') === -1 ? decoded : removeDotSegments(decoded);
}

function hexAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? HEX[c]! : -1;
}

/** removeDotSegments: RFC 3986 §5.2.4 for an absolute path ("/a/./b/../c" → "/a/c"). */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // "/a/b/.." is the directory "/a/": the slash stays.
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/** firstSegment is the path's first segment: "api" for "/api/v1", "" for "/". */
export function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

/**
 * prefixMatches: `prefix` matches on whole segments ("/api" matches "/api",
 * "/api/" and "/api/x", not "/apix"); a prefix ending in "/" matches every
 * path that starts with it.
 */
export function prefixMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.charCodeAt(prefix.length - 1) === 47 || path.charCodeAt(prefix.length) === 47;
}
