/**
 * 1 GiB up and 1 GiB down through a balancer running as its own process,
 * with its resident memory sampled throughout: streaming, not buffering,
 * keeps its growth over the idle balancer's below the stated bound (what
 * the idle process holds is its code, which says nothing about streaming).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { startBackends, urlOf, freePort } from '../helpers/backends.js';
import { CLI, waitServing } from '../helpers/cli.js';

const GiB = 1024 ** 3;
const RSS_GROWTH_BOUND_MIB = 96;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

test(`1 GiB upload and download: the balancer's RSS grows by less than ${RSS_GROWTH_BOUND_MIB} MiB`, { timeout: 240_000 }, async (t) => {
  const backends = await startBackends(1);
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', '--no-access-log', '--backend', urlOf(backends[0]!)], { stdio: 'ignore' });
  let peak = 0;
  const sampler = setInterval(() => { try { peak = Math.max(peak, rssMiB(child.pid!)); } catch { /* exited */ } }, 50);
  try {
    await waitServing(`http://127.0.0.1:${port}`, 15_000);
    const idle = rssMiB(child.pid!);
    const chunk = Buffer.alloc(256 * 1024, 7);
    const uploaded = await new Promise<{ size: number }>((resolve, reject) => {
      const req = http.request(`http://127.0.0.1:${port}/upload`, { method: 'POST', agent: false, headers: { 'content-length': GiB } }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => { text += d.toString(); });
        res.on('end', () => resolve(JSON.parse(text)));
      });
      req.on('error', reject);
      let sent = 0;
      const pump = (): void => {
        while (sent < GiB) {
          sent += chunk.length;
          if (!req.write(chunk)) { req.once('drain', pump); return; }
        }
        req.end();
      };
      pump();
    });
    assert.equal(uploaded.size, GiB);

    const downloaded = await new Promise<number>((resolve, reject) => {
      http.get(`http://127.0.0.1:${port}/bytes?n=${GiB}`, { agent: false }, (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => { n += d.length; });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      }).on('error', reject);
    });
    assert.equal(downloaded, GiB);
    assert.ok(peak > 0, 'RSS was sampled');
    t.diagnostic(`RSS idle ${idle.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB`);
    assert.ok(peak - idle < RSS_GROWTH_BOUND_MIB, `peak RSS ${peak.toFixed(0)} MiB, idle ${idle.toFixed(0)} MiB`);
  } finally {
    clearInterval(sampler);
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    await Promise.all(backends.map((b) => b.close()));
  }
});
