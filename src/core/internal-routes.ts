/**
 * The shape of the balancer's own endpoints (the admin API's routes) when
 * they are served on a proxy listener: the pipeline asks each request's
 * URL, before anything else, whether it is one of them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** InternalRoutes are the balancer's own endpoints served on a proxy listener. */
export interface InternalRoutes {
  matches(url: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse): void;
}
