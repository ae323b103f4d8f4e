/**
 * Throwaway certificates for TLS tests, made at run time with the `openssl`
 * command in a temporary directory: a CA, server certificates for two SNI
 * names, an expired one, a key that matches none of them, a backend
 * certificate and a client certificate (for mTLS). Keys are EC P-256, which
 * openssl generates in milliseconds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestCerts {
  readonly dir: string;
  /** ca is the CA certificate (PEM path) that signed every certificate below. */
  readonly ca: string;
  /** a: "a.test", "localhost" and 127.0.0.1; b: "b.test" and "*.wild.test". */
  readonly a: CertPair;
  readonly b: CertPair;
  /** a2 is a second certificate for "a.test", to see a reload swap it. */
  readonly a2: CertPair;
  /** expired was valid for one day in 2020. */
  readonly expired: CertPair;
  /** strayKey is a private key that belongs to no certificate. */
  readonly strayKey: string;
  /** backend: "backend.test" only (no IP), to test the servername override. */
  readonly backend: CertPair;
  /** client: a client certificate for mTLS to backends. */
  readonly client: CertPair;
  /** fingerprint returns the SHA-256 fingerprint of a certificate file, as getPeerCertificate() shows it. */
  fingerprint(certFile: string): string;
  read(file: string): Buffer;
  remove(): void;
}

const CA_CONFIG = `[ ca ]
default_ca = test_ca
[ test_ca ]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[ any_name ]
commonName = supplied
`;

export function opensslAvailable(): boolean {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

export function makeCerts(): TestCerts {
  if (!opensslAvailable()) throw new Error('the openssl command is needed to make test certificates: apt-get install -y openssl');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-certs-'));
  const run = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }); };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Fulcrum Test CA');

  const issue = (name: string, cn: string, san: string, validity: string[], usage = 'serverAuth'): CertPair => {
    run('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`,
      '-addext', `subjectAltName=${san}`, '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', `extendedKeyUsage=${usage}`);
    run('ca', '-batch', '-notext', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key', '-in', `${name}.csr`, '-out', `${name}.pem`, ...validity);
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  const days = ['-days', '2'];
  const a = issue('a', 'a.test', 'DNS:a.test,DNS:localhost,IP:127.0.0.1', days);
  const b = issue('b', 'b.test', 'DNS:b.test,DNS:*.wild.test', days);
  const a2 = issue('a2', 'a.test', 'DNS:a.test,DNS:localhost,IP:127.0.0.1', days);
  const expired = issue('expired', 'expired.test', 'DNS:expired.test', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']);
  const backend = issue('backend', 'backend.test', 'DNS:backend.test', days);
  const client = issue('client', 'fulcrum-client', 'DNS:fulcrum-client', days, 'clientAuth');
  run('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'stray.key');

  return {
    dir,
    ca: join(dir, 'ca.pem'),
    a, b, a2, expired, backend, client,
    strayKey: join(dir, 'stray.key'),
    fingerprint: (certFile) => new X509Certificate(readFileSync(certFile)).fingerprint256,
    read: (file) => readFileSync(file),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface HandshakeResult {
  /** fingerprint is the SHA-256 fingerprint of the certificate the server presented. */
  readonly fingerprint: string;
  readonly alpn: string | false;
  readonly protocol: string | null;
  readonly authorized: boolean;
}

/** handshake opens one TLS connection to 127.0.0.1:port, reports what was negotiated and closes it. */
export function handshake(port: number, options: tls.ConnectionOptions = {}): Promise<HandshakeResult> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      const result: HandshakeResult = {
        fingerprint: socket.getPeerCertificate().fingerprint256,
        alpn: socket.alpnProtocol ?? false,
        protocol: socket.getProtocol(),
        authorized: socket.authorized,
      };
      socket.end();
      resolve(result);
    });
    socket.once('error', reject);
  });
}
