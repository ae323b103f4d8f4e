/**
 * The Redis store's Lua scripts: one atomic script per decision, so that
 * instances sharing a Redis never race between reading and writing a key.
 * Each is token-bucket.ts / sliding-window.ts step for step (Lua numbers are
 * doubles, as in JavaScript, and every value is a whole number below 2^53),
 * so both stores reach the same decisions for the same sequence.
 *
 * KEYS[1]: the client's key. ARGV[1]: now in ms, or -1 to use the Redis
 * server's clock (TIME), so that all instances share one clock. The reply
 * is { allowed (0|1), remaining, retryAfterMs, resetMs }.
 *
 * Keys expire once their state is worth nothing (the allowance is full
 * again), plus a margin: expiring late changes no decision, early would.
 */

/** EXPIRE_MARGIN_MS: the margin added to each key's TTL. */
export const EXPIRE_MARGIN_MS = 1000;

const NOW = `
local now = tonumber(ARGV[1])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/** ARGV: now, rate, per, burst. Hash fields: t = tokens (units of 1/per token), l = last update (ms). */
export const TOKEN_BUCKET_LUA = `${NOW}
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local capacity = tonumber(ARGV[4]) * cost
local fillMs = math.ceil(capacity / rate)
local tokens = capacity
local last = now
local saved = redis.call('HMGET', KEYS[1], 't', 'l')
if saved[1] then
  tokens = tonumber(saved[1])
  last = tonumber(saved[2])
end
local elapsed = now - last
if elapsed >= fillMs then
  tokens = capacity
elseif elapsed > 0 then
  tokens = math.min(capacity, tokens + elapsed * rate)
end
local allowed = 0
local retryAfter = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retryAfter = math.ceil((cost - tokens) / rate)
end
if now > last then
  last = now
end
local remaining = math.floor(tokens / cost)
local reset = math.ceil((capacity - tokens) / rate)
redis.call('HSET', KEYS[1], 't', tokens, 'l', last)
redis.call('PEXPIRE', KEYS[1], reset + ${EXPIRE_MARGIN_MS})
return { allowed, remaining, retryAfter, reset }
`;

/** ARGV: now, rate (the limit), per. Hash fields: s = window start, p = previous count, c = current count. */
export const SLIDING_WINDOW_LUA = `${NOW}
local limit = tonumber(ARGV[2])
local per = tonumber(ARGV[3])
local windowStart = math.floor(now / per) * per
local start = windowStart
local previous = 0
local current = 0
local saved = redis.call('HMGET', KEYS[1], 's', 'p', 'c')
if saved[1] then
  start = tonumber(saved[1])
  previous = tonumber(saved[2])
  current = tonumber(saved[3])
end
if windowStart > start then
  if windowStart - start == per then
    previous = current
  else
    previous = 0
  end
  current = 0
  start = windowStart
elseif windowStart < start then
  now = start
end
local elapsed = now - start
local capacity = limit * per
local used = previous * (per - elapsed) + current * per
local allowed = 0
local retryAfter = 0
if used + per <= capacity then
  current = current + 1
  allowed = 1
else
  local excess = used + per - capacity
  if current + 1 <= limit then
    retryAfter = math.ceil(excess / previous)
  else
    local intoNext = math.ceil((current * per - limit * per + per) / current)
    retryAfter = (per - elapsed) + math.max(0, intoNext)
  end
end
local usedAfter = previous * (per - elapsed) + current * per
local remaining = math.max(0, math.floor((capacity - usedAfter) / per))
local reset = 0
if current > 0 then
  reset = per - elapsed + per
elseif previous > 0 then
  reset = per - elapsed
end
redis.call('HSET', KEYS[1], 's', start, 'p', previous, 'c', current)
redis.call('PEXPIRE', KEYS[1], start + 2 * per - now + ${EXPIRE_MARGIN_MS})
return { allowed, remaining, retryAfter, reset }
`;
