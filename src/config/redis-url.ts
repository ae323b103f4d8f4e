/**
 * The environment's form of the Sentinel settings: a redis+sentinel:// URL
 * (REDIS_URL, or state.redis.url), listing several Sentinels and the master
 * group, which a WHATWG URL cannot hold (several hosts).
 */

/** SentinelUrl: what a redis+sentinel:// URL holds. */
export interface SentinelUrl {
  readonly sentinels: { host: string; port: number }[];
  readonly name: string;
  readonly db?: number;
  readonly username?: string;
  readonly password?: string;
  readonly sentinelPassword?: string;
}

/**
 * parseSentinelUrl reads `redis+sentinel://[user:pass@]host1:port1,host2:port2/mastername[/db][?sentinelPassword=...]`
 * (the environment's form of the Sentinel settings, for REDIS_URL); null when it is not one.
 * The credentials are the master's; a Sentinel port defaults to 26379.
 */
export function parseSentinelUrl(text: string): SentinelUrl | null {
  const m = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/([^/?]+)(?:\/(\d{1,2}))?\/?(?:\?(.*))?$/.exec(text);
  if (m === null) return null;
  const sentinels: { host: string; port: number }[] = [];
  for (const part of m[3]!.split(',')) {
    const hp = /^(\[[^\]]+\]|[^:,]+)(?::(\d{1,5}))?$/.exec(part);
    if (hp === null) return null;
    const p = hp[2] === undefined ? 26379 : Number(hp[2]);
    if (p < 1 || p > 65535) return null;
    sentinels.push({ host: hp[1]!.replace(/^\[|\]$/g, ''), port: p });
  }
  const query = new URLSearchParams(m[6] ?? '');
  const decode = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : decodeURIComponent(v));
  const out: SentinelUrl = {
    sentinels,
    name: decodeURIComponent(m[4]!),
    ...(m[5] === undefined ? {} : { db: Number(m[5]) }),
    ...(decode(m[1]) === undefined ? {} : { username: decode(m[1]) }),
    ...(decode(m[2]) === undefined ? {} : { password: decode(m[2]) }),
    ...(query.get('sentinelPassword') === null ? {} : { sentinelPassword: query.get('sentinelPassword')! }),
  };
  return out;
}
