/**
 * Reading one header from Node's raw header list ([name, value, name,
 * value...]), for the layers that look at a request's headers without
 * building req.headers (hash keys, rate-limit client keys).
 */

/** headerValue finds the first value of a header in the raw list, trimmed (without building req.headers). */
export function headerValue(raw: readonly string[], lower: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lower.length && name.toLowerCase() === lower) return raw[i + 1]!.trim();
  }
  return undefined;
}
