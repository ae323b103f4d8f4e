/**
 * The pure parts of discovery: the `discovery` config section, and how
 * EndpointSlices become backend specs (conditions, ports, address types).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/core/config-error.js';
import { specsFromSlices, type EndpointSlice } from '../../src/discovery/endpoint-slices.js';
import { specId } from '../../src/discovery/source.js';

function problems(input: unknown): string[] {
  try {
    validateConfig(input);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

test('discovery config: defaults, and backends may be left out', () => {
  const config = validateConfig({ discovery: { dns: { name: 'api.internal', port: 8080 }, kubernetes: { service: 'web' } } });
  assert.deepEqual(config.backends, []);
  assert.deepEqual(config.discovery?.dns, { name: 'api.internal', type: 'A', port: 8080, interval: 10_000 });
  assert.deepEqual(config.discovery?.kubernetes, { service: 'web' });
  assert.equal(validateConfig({ discovery: { dns: { name: '_http._tcp.api', type: 'SRV', interval: '2s', servers: ['127.0.0.1:5353', '[::1]:53', '10.0.0.2'] } } }).discovery?.dns?.interval, 2000);
});

test('discovery config: mistakes are reported with their path', () => {
  assert.deepEqual(problems({ discovery: { dns: { name: 'api' } } }), ['discovery.dns.port: required for A records: the port the backends listen on']);
  assert.match(problems({ discovery: { dns: { name: 'api', type: 'SRV', servers: ['dns.example:53'] } } })[0]!, /^discovery\.dns\.servers\[0\]: expected a DNS server address/);
  assert.match(problems({ discovery: { dns: { name: 'api', type: 'SRV', interval: '10ms' } } })[0]!, /^discovery\.dns\.interval: expected at least 100ms/);
  assert.match(problems({ discovery: { dns: { name: 'api', type: 'MX', port: 1 } } })[0]!, /^discovery\.dns\.type:/);
  assert.match(problems({ discovery: { kubernetes: { service: 'Web_App' } } })[0]!, /^discovery\.kubernetes\.service: expected a Kubernetes name/);
  assert.match(problems({ discovery: { kubernetes: { service: 'web', port: 0 } } })[0]!, /^discovery\.kubernetes\.port:/);
  assert.match(problems({ discovery: {} })[0]!, /^discovery: expected "dns" or "kubernetes"/);
  assert.match(problems({ discovery: { consul: {} } })[0]!, /unknown key "consul"/);
});

const slice = (over: Partial<EndpointSlice>): EndpointSlice => ({
  metadata: { name: 'web-x' },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [],
  ...over,
});

test('endpoint slices: ready in, terminating or not-ready marked terminating, unset ready counts as ready', () => {
  const { specs, problems: found } = specsFromSlices([slice({
    endpoints: [
      { addresses: ['10.0.0.1'], conditions: { ready: true, serving: true, terminating: false } },
      { addresses: ['10.0.0.2'], conditions: { ready: false, serving: true, terminating: true } },
      { addresses: ['10.0.0.3'], conditions: { ready: false } },
      { addresses: ['10.0.0.4'], conditions: {} },
      { addresses: ['10.0.0.5'] },
    ],
  })], 'http');
  assert.deepEqual(found, []);
  assert.deepEqual(specs.map((s) => [s.id, s.url, s.state]), [
    ['k8s-10.0.0.1-8080', 'http://10.0.0.1:8080', 'ready'],
    ['k8s-10.0.0.2-8080', 'http://10.0.0.2:8080', 'terminating'],
    ['k8s-10.0.0.3-8080', 'http://10.0.0.3:8080', 'terminating'],
    ['k8s-10.0.0.4-8080', 'http://10.0.0.4:8080', 'ready'],
    ['k8s-10.0.0.5-8080', 'http://10.0.0.5:8080', 'ready'],
  ]);
});

test('endpoint slices: ports by name, by number, or the only one; other slices are skipped with a reason', () => {
  const twoPorts = slice({ ports: [{ name: 'http', port: 8080 }, { name: 'metrics', port: 9090 }, { name: 'dns', port: 53, protocol: 'UDP' }], endpoints: [{ addresses: ['10.0.0.1'] }] });
  assert.equal(specsFromSlices([twoPorts], 'metrics').specs[0]!.url, 'http://10.0.0.1:9090');
  assert.equal(specsFromSlices([twoPorts], 9090).specs[0]!.url, 'http://10.0.0.1:9090');
  assert.match(specsFromSlices([twoPorts], 'dns').problems[0]!, /EndpointSlice web-x has no TCP port named "dns"/);
  assert.match(specsFromSlices([twoPorts], undefined).problems[0]!, /has 2 TCP ports/);
  assert.match(specsFromSlices([twoPorts], 7000).problems[0]!, /has no TCP port 7000/);
  const onePort = slice({ ports: [{ name: '', port: 3000 }], endpoints: [{ addresses: ['10.0.0.1'] }] });
  assert.equal(specsFromSlices([onePort], undefined).specs[0]!.url, 'http://10.0.0.1:3000');
  const allPorts = slice({ ports: null, endpoints: [{ addresses: ['10.0.0.1'] }] });
  assert.equal(specsFromSlices([allPorts], 4000).specs[0]!.url, 'http://10.0.0.1:4000');
});

test('endpoint slices: IPv6 and FQDN addresses; an address in two slices is ready if either says so', () => {
  const { specs } = specsFromSlices([
    slice({ addressType: 'IPv6', endpoints: [{ addresses: ['fd00::7'] }] }),
    slice({ addressType: 'FQDN', endpoints: [{ addresses: ['web-0.web.shop.svc'] }] }),
    slice({ metadata: { name: 'old' }, endpoints: [{ addresses: ['10.0.0.9'], conditions: { terminating: true } }] }),
    slice({ metadata: { name: 'new' }, endpoints: [{ addresses: ['10.0.0.9'], conditions: { ready: true } }] }),
  ], 'http');
  assert.deepEqual(specs.map((s) => [s.id, s.url, s.state]), [
    ['k8s-fd00__7-8080', 'http://[fd00::7]:8080', 'ready'],
    ['k8s-web-0.web.shop.svc-8080', 'http://web-0.web.shop.svc:8080', 'ready'],
    ['k8s-10.0.0.9-8080', 'http://10.0.0.9:8080', 'ready'],
  ]);
});

test('spec ids are valid backend ids, stable and distinct, also for long host names', () => {
  const long = `${'a'.repeat(60)}.example.internal`;
  const a = specId('dns', long, 8080);
  const b = specId('dns', long.replace('example', 'exampla'), 8080);
  assert.match(a, /^[A-Za-z0-9._-]{1,64}$/);
  assert.notEqual(a, b);
  assert.equal(a, specId('dns', long, 8080));
  assert.doesNotThrow(() => validateConfig({ backends: [{ id: a, url: 'http://127.0.0.1:1' }] }));
});
