/**
 * A real OTLP/HTTP traces receiver for tests: a node:http server that
 * decodes the JSON the official exporter POSTs (ExportTraceServiceRequest:
 * resourceSpans > scopeSpans > spans, ids as hex, attributes as typed
 * values) into plain spans. `mode` makes it answer 200, refuse with 503, or
 * hang (read the request, never answer) like a stuck collector.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type AttributeValue = string | number | boolean;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** kind: 2 server, 3 client (OTLP's SpanKind). */
  kind: number;
  attributes: Record<string, AttributeValue>;
  events: { name: string; attributes: Record<string, AttributeValue> }[];
  status: { code: number; message?: string };
  resource: Record<string, AttributeValue>;
}

export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** requests: export requests received (answered or not). */
  requests: number;
  mode: 'ok' | 'fail' | 'hang';
  close(): Promise<void>;
}

interface OtlpValue { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean }
interface OtlpAttribute { key: string; value: OtlpValue }

function attributes(list: OtlpAttribute[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
  }
  return out;
}

interface OtlpSpan {
  traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number;
  attributes?: OtlpAttribute[]; events?: { name: string; attributes?: OtlpAttribute[] }[]; status?: { code?: number; message?: string };
}
interface OtlpRequest { resourceSpans: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] }

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const hanging = new Set<http.ServerResponse>();
  const receiver: OtlpReceiver = {
    url: '',
    spans: [],
    requests: 0,
    mode: 'ok',
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receiver.requests++;
      if (receiver.mode === 'hang') {
        hanging.add(res);
        return;
      }
      if (receiver.mode === 'fail' || req.url !== '/v1/traces' || req.headers['content-type'] !== 'application/json') {
        res.writeHead(503).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpRequest;
      for (const rs of body.resourceSpans) {
        const resource = attributes(rs.resource?.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            receiver.spans.push({
              traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, kind: s.kind,
              attributes: attributes(s.attributes),
              events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attributes(e.attributes) })),
              status: { code: s.status?.code ?? 0, ...(s.status?.message === undefined ? {} : { message: s.status.message }) },
              resource,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (receiver as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return receiver;
}

/** HeaderBackend is a backend that answers 200 and keeps the headers of every request it got. */
export interface HeaderBackend {
  readonly url: string;
  readonly seen: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** startHeaderBackend: `answer` may set the response (default: 200 "ok"). */
export async function startHeaderBackend(answer?: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<HeaderBackend> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => {
      if (answer !== undefined) answer(req, res);
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
