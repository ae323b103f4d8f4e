/**
 * cookieValue reads one cookie from a Cookie header without parsing the
 * others: it returns the value of the first cookie called `name` (quotes
 * removed), or undefined when there is none.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const len = header.length;
  let start = 0;
  while (start < len) {
    let end = header.indexOf(';', start);
    if (end < 0) end = len;
    let s = start;
    while (s < end && (header.charCodeAt(s) === 32 || header.charCodeAt(s) === 9)) s++;
    if (end - s > name.length && header.charCodeAt(s + name.length) === 61 /* = */ && header.startsWith(name, s)) {
      const value = header.slice(s + name.length + 1, end).trim();
      return value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34 ? value.slice(1, -1) : value;
    }
    start = end + 1;
  }
  return undefined;
}
