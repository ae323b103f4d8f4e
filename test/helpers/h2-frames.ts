/**
 * Hand-built HTTP/2 frames (RFC 9113 4.1) and HPACK header blocks with
 * literal, never-indexed, non-Huffman fields (RFC 7541 6.2.3), for tests
 * that must send what no well-behaved client library would: field names
 * and values with CR, LF, NUL, floods of frames. And a reader that names
 * the frames the server sent back.
 */
import net from 'node:net';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;

/** frame: a 9-octet frame header and its payload. */
export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** hpackInt: an HPACK integer with an N-bit prefix (RFC 7541 5.1), the prefix's other bits in `first`. */
function hpackInt(value: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) { out.push((rest % 128) + 128); rest = Math.floor(rest / 128); }
  out.push(rest);
  return Buffer.from(out);
}

/** literal: one field as a literal never indexed, new name, raw (latin1) octets. */
export function literal(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x10]), hpackInt(n.length, 7, 0), n, hpackInt(v.length, 7, 0), v]);
}

/** requestBlock: `GET /path` over http with :authority, then `fields`, as one header block. */
export function requestBlock(path: string, authority: string, fields: readonly (readonly [string, string])[] = []): Buffer {
  // 0x82 :method GET and 0x86 :scheme http from the static table.
  return Buffer.concat([Buffer.from([0x82, 0x86]), literal(':path', path), literal(':authority', authority), ...fields.map(([n, v]) => literal(n, v))]);
}

/** clientStart: the preface and an empty SETTINGS frame. */
export function clientStart(): Buffer {
  return Buffer.concat([PREFACE, frame(FrameType.SETTINGS, 0, 0)]);
}

/** describeFrames names the frames in `bytes`: "HEADERS(1)", "RST_STREAM(1,PROTOCOL_ERROR)", "GOAWAY(ENHANCE_YOUR_CALM)"... */
export function describeFrames(bytes: Buffer): string[] {
  const codes = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM'];
  const names = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k])) as Record<number, string>;
  const out: string[] = [];
  for (let i = 0; i + 9 <= bytes.length;) {
    const length = bytes.readUIntBE(i, 3);
    const type = bytes[i + 3]!;
    const stream = bytes.readUInt32BE(i + 5) & 0x7fffffff;
    const payload = bytes.subarray(i + 9, i + 9 + length);
    const name = names[type] ?? `TYPE${type}`;
    if (type === FrameType.RST_STREAM && payload.length >= 4) out.push(`${name}(${stream},${codes[payload.readUInt32BE(0)] ?? payload.readUInt32BE(0)})`);
    else if (type === FrameType.GOAWAY && payload.length >= 8) out.push(`${name}(${codes[payload.readUInt32BE(4)] ?? payload.readUInt32BE(4)})`);
    else if (type === FrameType.HEADERS || type === FrameType.DATA) out.push(`${name}(${stream})`);
    else out.push(name);
    i += 9 + length;
  }
  return out;
}

/** H2Answer: the frames the server sent within the wait, and whether it closed the connection. */
export interface H2Answer {
  readonly frames: string[];
  readonly closed: boolean;
}

/** h2Exchange writes the client start and `bytes` on a new connection, and collects what comes back for `waitMs`. */
export function h2Exchange(port: number, bytes: Buffer | readonly Buffer[], waitMs = 300): Promise<H2Answer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let closed = false;
    socket.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); });
    socket.on('error', () => { /* a reset is an answer: see closed */ });
    socket.on('close', () => { closed = true; });
    socket.write(clientStart());
    for (const b of Array.isArray(bytes) ? bytes : [bytes]) socket.write(b);
    setTimeout(() => {
      socket.destroy();
      resolve({ frames: describeFrames(got), closed });
    }, waitMs);
  });
}
