/**
 * TrafficSplit: a route's weighted choice between services (canary,
 * blue-green), with weights that change at run time (the admin API, other
 * instances through the state store).
 *
 * The choice is smooth weighted round robin (nginx's): over any window of
 * `sum of weights` requests each side gets exactly its share, so a 1%
 * canary gets one request in a hundred, not "about one, give or take".
 * Only the sides that can serve take part: a side without a healthy backend
 * gets nothing and its share goes to the others; when no side can serve,
 * the weights alone decide and the request fails (or fails over) there.
 *
 * With a sticky cookie a client keeps the side it first got for as long as
 * that side can serve and keeps a weight above 0 (setting a side's weight
 * to 0 takes every client off it, which is what rolling a canary back
 * means). The cookie holds an HMAC of the route and the service under a
 * secret, computed once per side, so it names no service in clear and a
 * request costs no cryptography.
 */
import { createHmac } from 'node:crypto';
import { cookieValue } from '../balancer/cookie.js';
import type { Service } from './service.js';

/** SplitWeight: one side as configured or asked for: a service and its weight. */
export interface SplitWeight {
  readonly service: Service;
  readonly weight: number;
}

/** SplitSide: one side in force, with what it has served since the route was compiled. */
export class SplitSide {
  /** current: smooth weighted round robin's running credit. */
  current = 0;
  served = 0;
  constructor(readonly service: Service, public weight: number, readonly token: string | null) {}
}

export interface SplitCookieOptions {
  /** name: the cookie's name (one per route). */
  readonly name: string;
  /** ttl: the cookie's Max-Age in ms; 0 keeps it for the browser session. */
  readonly ttl: number;
  readonly secret: string | Buffer;
}

/** TOKEN_LENGTH: 22 base64url characters carry 132 bits of the HMAC (as sticky.ts). */
const TOKEN_LENGTH = 22;

export class TrafficSplit {
  #sides: SplitSide[] = [];
  #byToken = new Map<string, SplitSide>();
  readonly #route: string;
  readonly #cookie: SplitCookieOptions | null;
  readonly #attributes: string;

  constructor(route: string, weights: readonly SplitWeight[], cookie: SplitCookieOptions | null) {
    this.#route = route;
    this.#cookie = cookie;
    const maxAge = cookie !== null && cookie.ttl > 0 ? `; Max-Age=${Math.max(1, Math.ceil(cookie.ttl / 1000))}` : '';
    this.#attributes = `; Path=/${maxAge}; HttpOnly; SameSite=Lax`;
    this.setWeights(weights);
  }

  get sides(): readonly SplitSide[] {
    return this.#sides;
  }

  /** cookieName: the sticky cookie's name, or null when the split is not sticky. */
  get cookieName(): string | null {
    return this.#cookie?.name ?? null;
  }

  /**
   * setWeights replaces the sides. A service that stays keeps its served
   * count; the round robin starts afresh so the new shares hold at once.
   */
  setWeights(weights: readonly SplitWeight[]): void {
    const before = new Map(this.#sides.map((s) => [s.service.name, s]));
    this.#sides = weights.map((w) => {
      const side = new SplitSide(w.service, w.weight, this.#cookie === null ? null : this.#tokenOf(w.service.name));
      side.served = before.get(w.service.name)?.served ?? 0;
      return side;
    });
    this.#byToken = new Map(this.#sides.filter((s) => s.token !== null).map((s) => [s.token!, s]));
  }

  /** choose picks the side for one request; `cookie` is the request's Cookie header. */
  choose(cookie: string | undefined): SplitSide {
    if (this.#cookie !== null) {
      const token = cookieValue(cookie, this.#cookie.name);
      const pinned = token === undefined ? undefined : this.#byToken.get(token);
      if (pinned !== undefined && pinned.weight > 0 && pinned.service.canServe() === 'ok') {
        pinned.served++;
        return pinned;
      }
    }
    const side = this.#roundRobin(true) ?? this.#roundRobin(false)!;
    side.served++;
    return side;
  }

  /** setCookie: the Set-Cookie value that pins the client to `service`'s side, or null when its cookie already does (or none is kept). */
  setCookie(service: Service, cookie: string | undefined): string | null {
    if (this.#cookie === null) return null;
    const side = this.#sides.find((s) => s.service === service);
    if (side === undefined || side.token === null) return null;
    if (cookieValue(cookie, this.#cookie.name) === side.token) return null;
    return `${this.#cookie.name}=${side.token}${this.#attributes}`;
  }

  /** #roundRobin: smooth weighted round robin over the sides with weight (and, when `healthyOnly`, that can serve). */
  #roundRobin(healthyOnly: boolean): SplitSide | null {
    const sides = this.#sides;
    let best: SplitSide | null = null;
    let total = 0;
    for (let i = 0; i < sides.length; i++) {
      const s = sides[i]!;
      if (s.weight === 0 || (healthyOnly && s.service.canServe() !== 'ok')) continue;
      s.current += s.weight;
      total += s.weight;
      if (best === null || s.current > best.current) best = s;
    }
    if (best !== null) best.current -= total;
    return best;
  }

  #tokenOf(service: string): string {
    return createHmac('sha256', this.#cookie!.secret).update(`fulcrum-split\0${this.#route}\0${service}`).digest('base64url').slice(0, TOKEN_LENGTH);
  }
}
