/**
 * Character classes and constants shared by the HTTP/1.1 parsers (the
 * upstream response parser and the fast path's request-head parser), so
 * both apply the same rules to names and values.
 */

export const HT = 9;
export const LF = 10;
export const CR = 13;
export const SP = 32;
export const COMMA = 44;
export const COLON = 58;

/** TOKEN[c] is 1 for the characters allowed in a header name or method (RFC 9110 tchar). */
export const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

/** VISIBLE[c] is 1 for the visible characters of a header value or reason phrase (VCHAR and obs-text); SP and HTAB are checked apart. */
export const VISIBLE = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) VISIBLE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VISIBLE[c] = 1;

/** SECTION_END: a head's last line end and the empty line after it. */
export const SECTION_END = Buffer.from('\r\n\r\n', 'latin1');

/** matchLower compares t[s..] with a lower-case literal of letters and "-", ignoring the case of t. */
export function matchLower(t: string, s: number, literal: string): boolean {
  for (let k = 0; k < literal.length; k++) if ((t.charCodeAt(s + k) | 0x20) !== literal.charCodeAt(k)) return false;
  return true;
}

/**
 * isField says whether a header name is the field `lower` (its lower-case
 * spelling, of the same length as name: callers compare lengths first),
 * without a loop in the usual spellings: V8 compares whole strings
 * natively, while a loop over a string's characters costs some 40
 * instructions per character.
 */
export function isField(name: string, lower: string, canonical: string): boolean {
  if (name === lower || name === canonical) return true;
  // Another field of the same length (User-Agent for Connection) is told apart by its first letter, without a copy.
  return (name.charCodeAt(0) | 0x20) === lower.charCodeAt(0) && name.toLowerCase() === lower;
}

/** trimStart: the index of the first character of t[s..e) that is not SP or HTAB (e if there is none). */
export function trimStart(t: string, s: number, e: number): number {
  for (let c = t.charCodeAt(s); s < e && (c === SP || c === HT); c = t.charCodeAt(++s));
  return s;
}

/** trimEnd: the index after the last character of t[s..e) that is not SP or HTAB (s if there is none). */
export function trimEnd(t: string, s: number, e: number): number {
  for (let c = t.charCodeAt(e - 1); e > s && (c === SP || c === HT); c = t.charCodeAt(--e - 1));
  return e;
}

/** tokenEnd: where the element nextToken found ends (a second return value, without allocating). */
export let tokenEnd = 0;

/**
 * nextToken finds the next comma-separated, whitespace-trimmed, non-empty
 * element of t[i..e): it returns its start and sets tokenEnd, or returns -1.
 * Call it again from tokenEnd for the following one.
 */
export function nextToken(t: string, i: number, e: number): number {
  for (let c = t.charCodeAt(i); i < e && (c === SP || c === HT || c === COMMA); c = t.charCodeAt(++i));
  if (i >= e) return -1;
  const ts = i;
  while (i < e && t.charCodeAt(i) !== COMMA) i++;
  for (let c = t.charCodeAt(i - 1); i > ts && (c === SP || c === HT); c = t.charCodeAt(--i - 1));
  tokenEnd = i;
  return ts;
}
