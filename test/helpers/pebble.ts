/**
 * Pebble, Let's Encrypt's ACME test server (Debian package `pebble`), for
 * the ACME tests: started on free loopback ports with a throwaway TLS
 * certificate, its DNS pointed at the test DNS server (so that it really
 * validates challenges against Fulcrum's listeners, on the ports given as
 * httpPort and tlsPort), and stopped by PID. It counts the orders it saw
 * from its log. A missing binary fails with a message saying how to install it.
 */
import { waitForPort } from './redis.js';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './backends.js';

export interface PebbleOptions {
  /** dns: "127.0.0.1:<port>" of the DNS server Pebble resolves the domains with. */
  readonly dns: string;
  /** httpPort and tlsPort: where Pebble connects to validate HTTP-01 and TLS-ALPN-01. */
  readonly httpPort?: number;
  readonly tlsPort?: number;
  /** validitySeconds: the lifetime of the certificates it issues. */
  readonly validitySeconds?: number;
  /** blocked: domains Pebble refuses to issue for. */
  readonly blocked?: readonly string[];
  /** port: the ACME port (a fixed one lets a test start Pebble late, after Fulcrum). */
  readonly port?: number;
  /** tlsCertificate: Pebble's own TLS certificate (pebbleCertificate), when the test needs its CA bundle before Pebble runs. */
  readonly tlsCertificate?: PebbleCertificate;
}

export interface PebbleCertificate {
  readonly cert: string;
  readonly key: string;
}

/** pebbleCertificate makes a throwaway TLS certificate for Pebble's 127.0.0.1 listener in `dir`. */
export function pebbleCertificate(dir: string): PebbleCertificate {
  const cert = join(dir, 'pebble-cert.pem');
  const key = join(dir, 'pebble-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

export interface TestPebble {
  /** directory is the ACME directory URL. */
  readonly directory: string;
  /** caBundle is the PEM file of Pebble's own TLS certificate (acme.caBundle). */
  readonly caBundle: string;
  readonly port: number;
  /** orders counts the new-order requests Pebble received. */
  orders(): number;
  /** log is what Pebble printed. */
  log(): string;
  /** root fetches the PEM of the root that signs the certificates Pebble issues. */
  root(): Promise<string>;
  close(): Promise<void>;
}

export function pebbleBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v pebble'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || path === '') throw new Error('pebble is not installed: run "apt-get install -y pebble" (Debian/Ubuntu)');
  return path;
}


export async function startPebble(options: PebbleOptions): Promise<TestPebble> {
  const bin = pebbleBinary();
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-pebble-'));
  const { cert, key } = options.tlsCertificate ?? pebbleCertificate(dir);
  const port = options.port ?? await freePort();
  const management = await freePort();
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${port}`, managementListenAddress: `127.0.0.1:${management}`,
      certificate: cert, privateKey: key,
      httpPort: options.httpPort ?? 5002, tlsPort: options.tlsPort ?? 5001,
      ocspResponderURL: '', externalAccountBindingRequired: false,
      domainBlocklist: options.blocked ?? [],
      certificateValidityPeriod: options.validitySeconds ?? 3600,
    },
  };
  const file = join(dir, 'pebble.json');
  writeFileSync(file, JSON.stringify(config));
  let out = '';
  // No random validation sleeps, no rejected nonces, no reused authorizations: every order validates, at once.
  const child: ChildProcess = spawn(bin, ['-config', file, '-dnsserver', options.dns], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
  });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  let exited = false;
  child.once('exit', () => { exited = true; });
  await waitForPort(port, 10_000, 'pebble');
  return {
    directory: `https://127.0.0.1:${port}/dir`,
    caBundle: cert,
    port,
    orders: () => out.split('\n').filter((l) => l.includes('POST /order-plz')).length,
    log: () => out,
    root: () => new Promise<string>((resolve, reject) => {
      https.get(`https://127.0.0.1:${management}/roots/0`, { ca: readFileSync(cert) }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { body += c; });
        res.on('end', () => resolve(body));
      }).on('error', reject);
    }),
    close: async () => {
      if (!exited) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
