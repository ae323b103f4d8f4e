/**
 * The JSON Schema editors read (fulcrum.schema.json) is generated from the
 * zod schema. These tests keep the committed file equal to what
 * `fulcrum schema` prints, and check that it accepts every shipped config
 * and rejects the mistakes `fulcrum validate` rejects, at the same key.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { validateConfig } from '../../src/config/load.js';

const generated = configJsonSchema();
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(generated);

function readConfig(file: string): unknown {
  const text = readFileSync(file, 'utf8');
  return file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
}

describe('JSON Schema', () => {
  test('the committed fulcrum.schema.json is what `fulcrum schema` prints (run `node dist/src/cli.js schema -o fulcrum.schema.json` after changing the schema)', () => {
    const committed = JSON.parse(readFileSync('fulcrum.schema.json', 'utf8')) as unknown;
    assert.deepEqual(committed, generated);
  });

  // examples/config.json is the seed projects' format (port, servers), which Fulcrum reads through aliases; the schema describes Fulcrum's own keys.
  const shipped = [
    ...readdirSync('examples').filter((f) => /\.(ya?ml|json)$/.test(f) && f !== 'config.json').map((f) => join('examples', f)),
    'deploy/docker/fulcrum.yaml',
  ];
  for (const file of shipped) {
    test(`accepts ${file}, which fulcrum validate accepts`, () => {
      const config = readConfig(file);
      validateConfig(config); // throws if Fulcrum itself rejects it
      assert.ok(validate(config), `${file}: ${ajv.errorsText(validate.errors)}`);
    });
  }

  test('every shipped example names the schema for editors', () => {
    for (const file of shipped.filter((f) => /\.ya?ml$/.test(f))) {
      assert.match(readFileSync(file, 'utf8'), /^# yaml-language-server: \$schema=\S*fulcrum\.schema\.json$/m, file);
    }
  });

  const mistakes: [string, unknown, string][] = [
    ['an unknown top-level key', { listen: 8080, backends: ['http://127.0.0.1:8081'], bakends: [] }, ''],
    ['a backend weight that is not a number', { backends: [{ url: 'http://127.0.0.1:8081', weight: 'heavy' }] }, '/backends/0'],
    ['a listener given as text', { listen: 'eighty', backends: ['http://127.0.0.1:8081'] }, '/listen'],
    ['a duration that is neither text nor a number', { backends: ['http://127.0.0.1:8081'], timeouts: { connect: true } }, '/timeouts/connect'],
    ['an unknown algorithm key inside a service', { services: { web: { backends: ['http://127.0.0.1:8081'], algoritm: 'random' } }, routes: [{ service: 'web' }] }, '/services/web'],
    ['a route match key that does not exist', { services: { web: { backends: ['http://127.0.0.1:8081'] } }, routes: [{ service: 'web', match: { hostname: 'a' } }] }, '/routes/0/match'],
  ];
  for (const [what, config, at] of mistakes) {
    test(`rejects ${what}, as fulcrum validate does`, () => {
      assert.throws(() => validateConfig(config));
      assert.equal(validate(config), false);
      assert.ok(validate.errors!.some((e) => e.instancePath.startsWith(at)), `expected an error at ${at || 'the top'}: ${ajv.errorsText(validate.errors)}`);
    });
  }
});
