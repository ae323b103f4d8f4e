/**
 * Duration and size parsing for configuration values.
 *
 * Durations accept a number of seconds (the seed projects' convention) or a
 * string with a unit: "500ms", "10s", "1m", "1h", "30d", and compounds like "1m30s".
 * Sizes accept a number of bytes or a string: "512b", "64kb", "10mb", "1gb".
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/;

/** parseDuration returns milliseconds, or undefined when the input is not a duration. */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input * 1000 : undefined;
  if (typeof input !== 'string') return undefined;
  let rest = input.trim().toLowerCase();
  if (rest === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(rest)) return Number(rest) * 1000;
  let total = 0;
  while (rest.length > 0) {
    const m = DURATION_RE.exec(rest);
    if (!m) return undefined;
    total += Number(m[1]) * (DURATION_UNITS[m[2]!] ?? 0);
    rest = rest.slice(m[0].length);
  }
  return total;
}

const SIZE_UNITS: Record<string, number> = {
  b: 1, kb: 1024, k: 1024, kib: 1024, mb: 1024 ** 2, m: 1024 ** 2, mib: 1024 ** 2,
  gb: 1024 ** 3, g: 1024 ** 3, gib: 1024 ** 3,
};
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/;

/** parseSize returns bytes, or undefined when the input is not a size. */
export function parseSize(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const m = SIZE_RE.exec(input.trim().toLowerCase());
  if (!m) return undefined;
  const unit = m[2] === '' ? 1 : SIZE_UNITS[m[2]!];
  if (unit === undefined) return undefined;
  return Math.floor(Number(m[1]) * unit);
}

/** formatDuration renders milliseconds the way a user would write them in a config file. */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
