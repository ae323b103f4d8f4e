/**
 * Host names as routes match them: lower case, without the port and
 * without a trailing dot. HTTP/2's :authority counts as Host.
 */

/** hostName returns the name part of a Host value ("API.Example.com:8080" → "api.example.com", "[::1]:80" → "[::1]"). */
export function hostName(host: string | undefined): string {
  if (host === undefined || host === '') return '';
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* "[" */) {
    const close = host.indexOf(']');
    end = close === -1 ? host.length : close + 1;
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* "." */) end--;
  const name = end === host.length ? host : host.slice(0, end);
  return hasUpper(name) ? name.toLowerCase() : name;
}

function hasUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

/** parentDomain is what a leading wildcard stands above: "example.com" for "a.example.com", "" for a single label. */
export function parentDomain(name: string): string {
  const dot = name.indexOf('.');
  return dot === -1 ? '' : name.slice(dot + 1);
}
