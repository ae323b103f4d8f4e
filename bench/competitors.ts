/**
 * Other Node proxies, for a side-by-side run: node-http-proxy and
 * @fastify/http-proxy, each round-robin over the same two backends.
 * Usage: node competitors.js <http-proxy|fastify> <port> <backend1> <backend2>
 */
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [kind, portText, ...targets] = process.argv.slice(2);
const port = Number(portText);

async function main(): Promise<void> {
  if (kind === 'http-proxy') {
    const httpProxy = require('http-proxy') as { createProxyServer(o: object): { web(req: unknown, res: unknown, o: object): void; on(e: string, cb: (...a: unknown[]) => void): void } };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    const proxy = httpProxy.createProxyServer({ agent, xfwd: true });
    proxy.on('error', (_err, _req, res) => { (res as http.ServerResponse).writeHead(502).end(); });
    let i = 0;
    http.createServer((req, res) => proxy.web(req, res, { target: targets[i++ % targets.length] })).listen(port, '127.0.0.1', () => process.send?.('ready'));
    return;
  }
  if (kind === 'fastify') {
    const fastify = (require('fastify') as (o: object) => { register(p: unknown, o: object): void; listen(o: object): Promise<string> })({ logger: false });
    const proxyPlugin = require('@fastify/http-proxy') as unknown;
    // One upstream per plugin instance: @fastify/http-proxy has no balancing of its own, so use undici's BalancedPool through its `undici` option when available, else the first target.
    fastify.register(proxyPlugin, { upstream: targets[0], undici: { connections: 128, pipelining: 1 } });
    await fastify.listen({ port, host: '127.0.0.1' });
    process.send?.('ready');
    return;
  }
  throw new Error(`unknown competitor ${kind}`);
}

void main();
