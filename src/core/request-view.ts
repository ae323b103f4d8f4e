/**
 * RequestView is what the request-reading policies see of a request: the
 * hash key, sticky sessions, rate-limit keys and (with routing) matchers.
 * They read these few fields rather than a node:http request, so that they
 * work alike for every listener and protocol, and can be tested with a
 * plain object.
 */
export interface RequestView {
  readonly method: string;
  /** url is the request target in origin form: path and query. */
  readonly url: string;
  /** rawHeaders is the flat [name, value, ...] list as the client sent it. */
  readonly rawHeaders: readonly string[];
  /** clientAddress is the client's address (the forwarded one only from trusted proxies). */
  readonly clientAddress: string;
  /** cookie is the request's Cookie header, joined, or undefined. */
  readonly cookie: string | undefined;
}
