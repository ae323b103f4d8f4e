/**
 * The layering rules (.dependency-cruiser.cjs) bite: they are run, exactly
 * as `npm run deps` runs them on src/, on small fixture trees written to a
 * temporary directory. A tree of wrong-way imports is reported rule by rule,
 * import by import, and none of the allowed imports beside them is; a clean
 * tree is reported clean.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const RULES = join(ROOT, '.dependency-cruiser.cjs');

/** A fixture tree: file path (under the tree's root) to its source. */
type Tree = Record<string, string>;

const TSCONFIG = JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true },
  include: ['src/**/*.ts'],
});

/** Modules that import nothing, for the fixtures to point at. */
const LEAVES: Tree = {
  'src/core/errors.ts': 'export const code = 1;\n',
  'src/config/schema.ts': 'export const schema = 1;\n',
  'src/backends/backend.ts': 'export class Backend { id = "b"; }\n',
  'src/proxy/pipeline.ts': 'export const pipeline = 1;\n',
  'src/state/store.ts': 'export const store = 1;\n',
  'src/ratelimit/types.ts': 'export const types = 1;\n',
  'src/app/host.ts': 'export interface Host { readonly name: string }\n',
};

/** The wrong-way imports, each beside allowed ones in the same module. */
const WRONG: Tree = {
  ...LEAVES,
  'src/core/downstream.ts': "import { pipeline } from '../proxy/pipeline.js';\nimport { code } from './errors.js';\nexport const d = pipeline + code;\n",
  'src/config/load.ts': "import { pipeline } from '../proxy/pipeline.js';\nimport { code } from '../core/errors.js';\nexport const l = pipeline + code;\n",
  'src/observe/metrics.ts': "import { Backend } from '../backends/backend.js';\nexport const m = new Backend();\n",
  'src/observe/log.ts': "import type { Backend } from '../backends/backend.js';\nexport type L = Backend;\n",
  'src/listen/server.ts': "import { pipeline } from '../proxy/pipeline.js';\nimport { schema } from '../config/schema.js';\nexport const s = pipeline + schema;\n",
  'src/state/install.ts': "import { cluster } from '../cluster/hub.js';\nimport { store } from './store.js';\nexport const i = cluster + store;\n",
  'src/ratelimit/feature.ts': "import { cluster } from '../cluster/hub.js';\nimport { store } from '../state/store.js';\nexport const f = cluster + store;\n",
  'src/cluster/hub.ts': "import { store } from '../state/store.js';\nimport { types } from '../ratelimit/types.js';\nexport const cluster = store + types;\n",
  'src/admin/api.ts': "import type { Fulcrum } from '../app/fulcrum.js';\nimport type { Host } from '../app/host.js';\nexport type A = [Fulcrum, Host];\n",
  'src/app/fulcrum.ts': "import { pipeline } from '../proxy/pipeline.js';\nexport class Fulcrum { p = pipeline; }\n",
  'src/balancer/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
  'src/balancer/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
  'src/upstream/clients.ts': "import { gone } from './gone.js';\nexport const c = gone;\n",
};

/** Every layer importing only what its rule allows, entry points anything. */
const CLEAN: Tree = {
  ...LEAVES,
  'src/core/downstream.ts': "import { code } from './errors.js';\nexport const d = code;\n",
  'src/config/load.ts': "import { code } from '../core/errors.js';\nexport const l = code;\n",
  'src/observe/log.ts': "import type { Backend } from '../backends/backend.js';\nexport type L = Backend;\n",
  'src/balancer/picker.ts': "import { Backend } from '../backends/backend.js';\nimport { schema } from '../config/schema.js';\nexport const p = [new Backend(), schema];\n",
  'src/proxy/runtime.ts': "import { p } from '../balancer/picker.js';\nimport { pipeline } from './pipeline.js';\nexport const r = [p, pipeline];\n",
  'src/cluster/hub.ts': "import { store } from '../state/store.js';\nimport { types } from '../ratelimit/types.js';\nimport type { Host } from '../app/host.js';\nexport const cluster = [store, types];\nexport type H = Host;\n",
  'src/admin/api.ts': "import { cluster } from '../cluster/hub.js';\nimport { r } from '../proxy/runtime.js';\nexport const a = [cluster, r];\n",
  'src/app/fulcrum.ts': "import { a } from '../admin/api.js';\nexport class Fulcrum { a = a; }\n",
  'src/index.ts': "import { Fulcrum } from './app/fulcrum.js';\nimport { l } from './config/load.js';\nexport const f = [new Fulcrum(), l];\n",
};

function write(dir: string, tree: Tree): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tsconfig.json'), TSCONFIG);
  for (const [file, source] of Object.entries(tree)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), source);
  }
}

/** check cruises the tree's src/ with the repo's rules, as `depcruise src --config .dependency-cruiser.cjs` does. */
async function check(dir: string): Promise<string[]> {
  const options = await extractDepcruiseOptions(RULES);
  const tsConfigFile = join(dir, 'tsconfig.json');
  const result = await cruise(['src'], { ...options, baseDir: dir, tsConfig: { fileName: tsConfigFile } }, {}, { tsConfig: extractTSConfig(tsConfigFile) });
  const output = result.output as ICruiseResult;
  return output.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

describe('layering rules', () => {
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'fulcrum-layers-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('every wrong-way import is reported, and none of the allowed ones beside it', async () => {
    const dir = join(root, 'wrong');
    write(dir, WRONG);
    assert.deepEqual(await check(dir), [
      'admin-only-to-layers-and-earlier-features: src/admin/api.ts → src/app/fulcrum.ts',
      // A cycle is reported once, at the first of its imports.
      'no-circular: src/balancer/a.ts → src/balancer/b.ts',
      'config-only-to-core: src/config/load.ts → src/proxy/pipeline.ts',
      'core-imports-nothing: src/core/downstream.ts → src/proxy/pipeline.ts',
      'listen-only-to-lower-layers: src/listen/server.ts → src/proxy/pipeline.ts',
      'not-to-unresolvable: src/upstream/clients.ts → ./gone.js',
      'observe-to-backends-types-only: src/observe/metrics.ts → src/backends/backend.ts',
      'ratelimit-only-to-layers-and-earlier-features: src/ratelimit/feature.ts → src/cluster/hub.ts',
      'state-only-to-layers: src/state/install.ts → src/cluster/hub.ts',
    ].sort());
  });

  test('a tree that imports only the way the layers allow is clean', async () => {
    const dir = join(root, 'clean');
    write(dir, CLEAN);
    assert.deepEqual(await check(dir), []);
  });
});
