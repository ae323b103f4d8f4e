/** InternalRoutes are the balancer's own endpoints served on a proxy listener. */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface InternalRoutes {
  matches(url: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse): void;
}
