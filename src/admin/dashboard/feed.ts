/**
 * DashboardFeed: the dashboard's WebSocket (/dashboard/ws, `ws` library).
 * The server only talks: each tick's snapshot is serialized once and the
 * same text is sent to every page. A page that cannot keep up is skipped
 * for that tick rather than buffered without bound; it catches up with the
 * next snapshot, since each one is complete.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { pathOf } from '../http.js';

export const FEED_PATH = '/dashboard/ws';

/** MAX_BUFFERED: bytes queued to one page beyond which its updates are skipped. */
const MAX_BUFFERED = 1024 * 1024;

const FORBIDDEN = 'cross-origin connections to the dashboard feed are refused\n';

export class DashboardFeed {
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 1024, clientTracking: true });
  readonly #greeting: () => string;

  /** greeting builds the first message a page receives (history and the latest snapshot). */
  constructor(greeting: () => string) {
    this.#greeting = greeting;
    this.#wss.on('connection', (ws) => {
      ws.on('error', () => ws.terminate());
      // Pages send nothing; anything received is ignored.
      ws.send(this.#greeting());
    });
  }

  get clients(): number {
    return this.#wss.clients.size;
  }

  /** upgrade takes /dashboard/ws upgrades (returns false for any other path). */
  upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    if (pathOf(req.url ?? '') !== FEED_PATH) return false;
    if (!sameOrigin(req)) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${FORBIDDEN.length}\r\nConnection: close\r\n\r\n${FORBIDDEN}`);
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#wss.emit('connection', ws, req));
    return true;
  };

  broadcast(text: string): void {
    for (const ws of this.#wss.clients) {
      if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < MAX_BUFFERED) ws.send(text);
    }
  }

  /** disconnectAll drops every page (they reconnect by themselves); the feed stays open. */
  disconnectAll(): void {
    for (const ws of this.#wss.clients) ws.terminate();
  }

  close(): void {
    this.disconnectAll();
    this.#wss.close();
  }
}

/**
 * sameOrigin refuses pages of other sites (a browser always sends Origin
 * on a WebSocket): they could otherwise read the feed through the user's
 * browser. Clients without Origin (scripts, curl) are let in, as /status is.
 */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
