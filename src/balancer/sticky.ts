/**
 * Sticky sessions, on top of any policy: the first response to a client
 * sets a cookie naming its backend, and later requests carrying it go to
 * that backend for as long as it is available. When it is not (unhealthy,
 * draining, removed, or already tried by this request), the wrapped policy
 * chooses and the response re-pins the client to the new backend.
 *
 * The cookie value is an opaque token: HMAC-SHA256 of the backend's URL
 * under a secret, so it reveals nothing of the internal address and cannot
 * be forged to reach a chosen backend. Tokens are computed once per backend
 * and looked up in a map, so a request costs no cryptography. Without a
 * configured `secret` a random one is made per process: cookies then stop
 * matching after a restart, and differ between instances behind the same
 * address; configure a shared secret in that case.
 */
import { createHmac } from 'node:crypto';
import type { Backend } from '../backends/backend.js';
import type { FulcrumConfig } from '../config/schema.js';
import { cookieValue } from './cookie.js';
import { available, type PickContext, type Picker } from './picker.js';

export type StickyConfig = NonNullable<FulcrumConfig['sticky']>;

/** ResponseHeadContext is what sticky sessions read of an exchange when its response head goes out. */
export interface ResponseHeadContext {
  readonly backend: Backend | null;
  readonly cookie: string | undefined;
}

/** TOKEN_LENGTH: 22 base64url characters carry 132 bits of the HMAC. */
const TOKEN_LENGTH = 22;

export class StickySessions {
  readonly cookieName: string;
  readonly #secret: string | Buffer;
  readonly #attributes: string;
  readonly #tokens = new WeakMap<Backend, string>();

  /** secret is `sticky.secret`, or a random per-process secret when none is configured. */
  constructor(config: StickyConfig, secret: string | Buffer) {
    this.cookieName = config.cookie;
    this.#secret = secret;
    const maxAge = config.ttl > 0 ? `; Max-Age=${Math.max(1, Math.ceil(config.ttl / 1000))}` : '';
    this.#attributes = `; Path=/${maxAge}; HttpOnly; SameSite=Lax`;
  }

  /** tokenOf is the cookie value that pins a client to `backend`. */
  tokenOf(backend: Backend): string {
    let token = this.#tokens.get(backend);
    if (token === undefined) {
      token = createHmac('sha256', this.#secret).update(`fulcrum-sticky\0${backend.url.href}`).digest('base64url').slice(0, TOKEN_LENGTH);
      this.#tokens.set(backend, token);
    }
    return token;
  }

  /** wrap returns a picker that honours the cookie and otherwise asks `inner`. */
  wrap(inner: Picker, backends: readonly Backend[]): Picker {
    const byToken = new Map<string, Backend>();
    for (const b of backends) byToken.set(this.tokenOf(b), b);
    return new StickyPicker(inner, byToken, this.cookieName);
  }

  /** onResponseHead (re)pins the client when the backend that answered is not the one its cookie names. */
  onResponseHead(ctx: ResponseHeadContext, headers: string[]): void {
    const backend = ctx.backend;
    if (backend === null) return;
    const token = this.tokenOf(backend);
    if (cookieValue(ctx.cookie, this.cookieName) === token) return;
    headers.push('set-cookie', `${this.cookieName}=${token}${this.#attributes}`);
  }
}

export class StickyPicker implements Picker {
  constructor(
    private readonly inner: Picker,
    private readonly byToken: ReadonlyMap<string, Backend>,
    private readonly cookieName: string,
  ) {}

  pick(ctx: PickContext): Backend | undefined {
    const token = cookieValue(ctx.cookie, this.cookieName);
    if (token !== undefined) {
      const pinned = this.byToken.get(token);
      if (pinned !== undefined && available(pinned, ctx.tried)) return pinned;
    }
    return this.inner.pick(ctx);
  }
}
