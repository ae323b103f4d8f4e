/**
 * Raw HTTP/1 exchanges for malformed-input tests: hand-written bytes on a
 * real socket (plain or TLS), and the answer as the client saw it.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';

export interface RawAnswer {
  /** status is the first response's status code, or 0 when the connection closed without one. */
  readonly status: number;
  /** text is everything received, as latin1. */
  readonly text: string;
  /** closed: the server closed the connection within the wait. */
  readonly closed: boolean;
}

export type Connector = () => Duplex;

export const plain = (port: number): Connector => () => net.connect(port, '127.0.0.1');
export const overTls = (port: number, alpn = 'http/1.1'): Connector => () => tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: [alpn], servername: 'localhost' });

/**
 * rawExchange writes `bytes`, then waits until one whole response has come
 * (its head and its Content-Length of body) or the connection closes, then
 * waits `settleMs` more to see whether the server also closes.
 */
export function rawExchange(connect: Connector, bytes: string | Buffer, waitMs = 3000, settleMs = 0): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect();
    let text = '';
    let done = false;
    let closed = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const settle = (): void => {
        socket.destroy();
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
        resolve({ status: m === null ? 0 : Number(m[1]), text, closed });
      };
      if (settleMs > 0 && !closed) setTimeout(settle, settleMs);
      else settle();
    };
    const timer = setTimeout(finish, waitMs);
    // Both kinds of socket hold writes until they are connected (and, for TLS, the handshake is done).
    socket.write(bytes);
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (!done && complete(text)) finish();
    });
    socket.on('error', () => { /* a reset is an answer too: see closed */ });
    socket.on('close', () => { closed = true; finish(); });
  });
}

/** complete: text holds one whole response (a head and its Content-Length of body; 1xx heads are skipped). */
function complete(text: string): boolean {
  let start = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', start);
    if (end < 0) return false;
    const head = text.slice(start, end);
    if (/^HTTP\/1\.[01] 1\d\d/.test(head) && !/^HTTP\/1\.[01] 101/.test(head)) { start = end + 4; continue; }
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    return m === null ? /^HTTP\/1\.[01] 101/.test(head) : text.length - (end + 4) >= Number(m[1]);
  }
}
