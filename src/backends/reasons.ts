/**
 * Reasons a backend is out of rotation, as a bit set: a backend is healthy
 * when no reason is set, so "why is it out?" always has an answer.
 */
export const Reason = {
  ACTIVE_CHECK_FAILED: 1,
  EJECTED: 2,
  DRAINING: 4,
  DISABLED: 8,
  /** INITIALLY_DOWN: configured `healthy: false`, cleared by the first passing check. */
  INITIALLY_DOWN: 16,
} as const;

export type ReasonBit = (typeof Reason)[keyof typeof Reason];

const NAMES: readonly [number, string][] = [
  [Reason.ACTIVE_CHECK_FAILED, 'active-check-failed'],
  [Reason.EJECTED, 'ejected'],
  [Reason.DRAINING, 'draining'],
  [Reason.DISABLED, 'disabled'],
  [Reason.INITIALLY_DOWN, 'initially-down'],
];

/** reasonNames turns a bit set into the strings shown in /status. */
export function reasonNames(reasons: number): string[] {
  const out: string[] = [];
  for (const [bit, name] of NAMES) if ((reasons & bit) !== 0) out.push(name);
  return out;
}

/** reasonBits is the inverse of reasonNames; unknown names are ignored. */
export function reasonBits(names: readonly string[]): number {
  let bits = 0;
  for (const [bit, name] of NAMES) if (names.includes(name)) bits |= bit;
  return bits;
}
