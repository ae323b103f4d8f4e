/**
 * The deployment files, checked without Docker or a cluster: they are
 * parsed, and everything they invoke (CLI commands and flags, environment
 * variables, config files, the container health check) is run or loaded
 * here the way the container or the pod would.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { startBalancer, get, type TestBalancer } from '../helpers/balancer.js';
import { startBackends, urlOf, freePort, type DemoBackend } from '../helpers/backends.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli.js');

/** Doc is a parsed YAML document; the tests check its fields one by one. */
type Doc = Record<string, any>;

/** acceptedFlags reads a CLI command's --help and returns the long and short flags it accepts. */
function acceptedFlags(command: string): Set<string> {
  const out = spawnSync(process.execPath, [CLI, command, '--help'], { encoding: 'utf8' });
  assert.equal(out.status, 0, `fulcrum ${command} --help failed: ${out.stderr}`);
  return new Set(out.stdout.match(/(?<![\w-])--?[a-z][\w-]*/g) ?? []);
}

function assertFlagsAccepted(args: readonly string[], label: string): void {
  const flags = acceptedFlags(args[0]!);
  for (const arg of args.slice(1)) if (arg.startsWith('-')) assert.ok(flags.has(arg), `${label}: "${args[0]} ${arg}" is not a flag the CLI accepts`);
}

function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i < 0 ? undefined : args[i + 1];
}

/** runNode runs `node <args>` with extra environment and resolves with its exit code. */
function runNode(args: readonly string[], env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('exit', (code) => resolvePromise(code ?? -1));
  });
}

/** instructions parses a Dockerfile into [instruction, arguments] pairs (continuations joined, comments dropped). */
function instructions(text: string): [string, string][] {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return lines.map((l) => {
    const [word, ...rest] = l.split(/\s+/);
    return [word!.toUpperCase(), rest.join(' ')];
  });
}

describe('Dockerfile and .dockerignore', () => {
  const steps = instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const all = (kind: string): string[] => steps.filter(([k]) => k === kind).map(([, v]) => v);
  const runtimeStart = steps.findLastIndex(([k]) => k === 'FROM');
  const runtime = steps.slice(runtimeStart);

  test('multi-stage: build with npm ci and tsc, run with production dependencies and dist/src, as a non-root user', () => {
    const froms = all('FROM');
    assert.ok(froms.length >= 2, 'at least a build and a runtime stage');
    assert.match(froms.at(-1)!, /^node:20-(slim|alpine)\b/);
    const buildName = /\bAS\s+(\S+)/i.exec(froms[0]!)?.[1];
    assert.ok(buildName !== undefined, 'the build stage is named');
    const buildSteps = steps.slice(0, runtimeStart).filter(([k]) => k === 'RUN').map(([, v]) => v).join('\n');
    assert.match(buildSteps, /npm ci\b/);
    assert.match(buildSteps, /tsc -p tsconfig\.json/);
    const runtimeRuns = runtime.filter(([k]) => k === 'RUN').map(([, v]) => v).join('\n');
    assert.match(runtimeRuns, /npm ci --omit=dev/);
    assert.ok(runtime.some(([k, v]) => k === 'COPY' && v.includes(`--from=${buildName}`) && v.includes('dist/src')));
    const user = runtime.filter(([k]) => k === 'USER').at(-1)?.[1];
    assert.ok(user !== undefined && user !== 'root' && user !== '0', 'runs as a non-root user');
    assert.deepEqual(all('EXPOSE'), ['8080']);
  });

  test('what the build copies exists and is not excluded by .dockerignore', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const needed of ['node_modules', 'dist', '.git']) assert.ok(ignored.includes(needed), `.dockerignore leaves out ${needed}`);
    for (const copy of all('COPY').filter((v) => !v.startsWith('--from'))) {
      const sources = copy.split(/\s+/).slice(0, -1);
      for (const source of sources) {
        assert.ok(existsSync(join(ROOT, source)), `COPY source ${source} exists`);
        assert.ok(!ignored.includes(source), `COPY source ${source} is not in .dockerignore`);
      }
    }
  });

  test('the entrypoint is the CLI and the default command is one it accepts', () => {
    const entrypoint = JSON.parse(all('ENTRYPOINT').at(-1)!) as string[];
    const cmd = JSON.parse(all('CMD').at(-1)!) as string[];
    assert.deepEqual(entrypoint, ['node', 'dist/src/cli.js']);
    assert.ok(existsSync(join(ROOT, entrypoint[1]!)));
    assert.deepEqual(cmd, ['start']);
    assert.ok(acceptedFlags('start').has('--config'));
  });

  describe('the HEALTHCHECK command, run against a real balancer', () => {
    let backends: DemoBackend[];
    let healthy: TestBalancer;
    let unhealthy: TestBalancer;
    const check = (): string[] => {
      const line = all('HEALTHCHECK').at(-1)!;
      const exec = /\bCMD\s+(\[.*\])\s*$/.exec(line);
      assert.ok(exec !== null, 'HEALTHCHECK uses the exec form');
      const argv = JSON.parse(exec[1]!) as string[];
      assert.equal(argv[0], 'node', 'the slim image has no curl: node does the check');
      assert.ok(argv.join(' ').includes('/healthz'));
      return argv.slice(1);
    };
    before(async () => {
      backends = await startBackends(1);
      healthy = await startBalancer({ backends: [urlOf(backends[0]!)] });
      unhealthy = await startBalancer({ backends: [{ url: `http://127.0.0.1:${await freePort()}`, healthy: false }] });
    });
    after(async () => {
      await healthy.close();
      await unhealthy.close();
      await Promise.all(backends.map((b) => b.close()));
    });

    test('exit 0 when /healthz is 200, 1 when it is 503 or nothing listens', async () => {
      assert.equal((await get(`${unhealthy.url}/healthz`)).status, 503);
      assert.equal(await runNode(check(), { FULCRUM_PORT: String(healthy.port) }), 0);
      assert.equal(await runNode(check(), { FULCRUM_PORT: String(unhealthy.port) }), 1);
      assert.equal(await runNode(check(), { FULCRUM_PORT: String(await freePort()) }), 1);
    });
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as Doc;
  const services = compose.services as Record<string, Doc>;
  const backendNames = ['backend1', 'backend2'];

  test('the services of the seed setup, each built from this repository or a known image', () => {
    assert.deepEqual(Object.keys(services).sort(), ['backend1', 'backend2', 'fulcrum', 'redis']);
    for (const name of ['fulcrum', ...backendNames]) assert.equal(services[name]!.build, '.', `${name} is built from the Dockerfile`);
    assert.match(services.redis!.image, /^redis:/);
    for (const [name, service] of Object.entries(services)) {
      for (const dep of Object.keys(service.depends_on ?? {})) assert.ok(dep in services, `${name} depends on an existing service (${dep})`);
    }
  });

  test('Fulcrum: port 8080, its mounted config is valid with the compose environment, Redis is the store, backends are the compose services', () => {
    const fulcrum = services.fulcrum!;
    assert.ok((fulcrum.ports as string[]).includes('8080:8080'));
    const env = fulcrum.environment as Record<string, string>;
    const mount = (fulcrum.volumes as string[]).map((v) => v.split(':')).find(([, target]) => target === env.FULCRUM_CONFIG);
    assert.ok(mount !== undefined, 'FULCRUM_CONFIG names a mounted file');
    const file = join(ROOT, mount[0]!);
    const { config } = loadConfig({ env: { ...env, FULCRUM_CONFIG: file } });
    assert.equal(config.listen[0]!.port, 8080);
    assert.equal(config.state.store, 'redis');
    assert.equal(config.state.redis.url, env.REDIS_URL);
    assert.equal(new URL(env.REDIS_URL!).hostname, 'redis');
    const targets = config.backends.map((b) => new URL(b.url)).map((u) => `${u.hostname}:${u.port}`).sort();
    const declared = backendNames.map((name) => `${name}:${flagValue(services[name]!.command as string[], '--port')}`).sort();
    assert.deepEqual(targets, declared, 'each backend URL is a compose service on the port its command listens on');
    const cli = spawnSync(process.execPath, [CLI, 'validate', '-c', file], { encoding: 'utf8' });
    assert.equal(cli.stdout.trim(), 'ok', cli.stderr);
  });

  test('the backend services run "fulcrum backend" with flags the CLI accepts, and answer (run here on a free port)', async () => {
    for (const name of backendNames) {
      const command = services[name]!.command as string[];
      assert.equal(command[0], 'backend');
      assertFlagsAccepted(command, name);
      const port = flagValue(command, '--port')!;
      assert.ok((services[name]!.ports as string[]).includes(`${port}:${port}`));

      // The same command, on a free port and on loopback only.
      const free = String(await freePort());
      const args = command.map((a, i) => (command[i - 1] === '--port' ? free : a));
      const child = spawn(process.execPath, [CLI, ...args, '--host', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        await new Promise<void>((resolvePromise, reject) => {
          child.stdout.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolvePromise(); });
          child.on('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
        });
        const res = await get(`http://127.0.0.1:${free}/`);
        assert.equal(res.body, `Hello from ${flagValue(command, '--name')}`);
        // Its compose health check, pointed at the same free port.
        const probe = (services[name]!.healthcheck.test as string[]).slice(1);
        assert.equal(probe[0], 'node');
        assert.equal(await runNode(probe.slice(1).map((a) => a.replace(`:${port}/`, `:${free}/`))), 0);
      } finally {
        child.kill('SIGTERM');
      }
    }
  });
});

describe('Kubernetes manifests', () => {
  const dir = join(ROOT, 'deploy/kubernetes');
  const kustomization = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Doc;
  const files = kustomization.resources as string[];
  const docs: Doc[] = files.flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Doc));
  const find = (kind: string, name: string): Doc => {
    const doc = docs.find((d) => d.kind === kind && d.metadata?.name === name);
    assert.ok(doc !== undefined, `${kind} ${name} is defined`);
    return doc;
  };
  const API_VERSIONS: Record<string, string> = {
    Namespace: 'v1', ServiceAccount: 'v1', ConfigMap: 'v1', Service: 'v1',
    Deployment: 'apps/v1', Role: 'rbac.authorization.k8s.io/v1', RoleBinding: 'rbac.authorization.k8s.io/v1',
    HorizontalPodAutoscaler: 'autoscaling/v2',
  };
  let tmp: string;
  before(() => { tmp = mkdtempSync(join(tmpdir(), 'fulcrum-k8s-')); });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('every manifest is listed by the kustomization, with a known kind, its apiVersion, a name and the namespace', () => {
    const yamlFiles = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
    assert.deepEqual([...files].sort(), yamlFiles);
    for (const doc of docs) {
      assert.equal(doc.apiVersion, API_VERSIONS[doc.kind], `${doc.kind} ${doc.metadata?.name}: apiVersion`);
      assert.match(doc.metadata?.name ?? '', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      if (doc.kind !== 'Namespace') assert.equal(doc.metadata.namespace, 'fulcrum', `${doc.kind} ${doc.metadata.name}: namespace`);
    }
    for (const kind of Object.keys(API_VERSIONS)) assert.ok(docs.some((d) => d.kind === kind), `a ${kind}`);
  });

  test('Deployments select their own pods, name ports the probes and Services use, and Services select existing pods', () => {
    for (const deployment of docs.filter((d) => d.kind === 'Deployment')) {
      const labels = deployment.spec.template.metadata.labels as Record<string, string>;
      for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels as Record<string, string>)) assert.equal(labels[k], v);
      for (const container of deployment.spec.template.spec.containers as Doc[]) {
        assert.ok(typeof container.image === 'string' && container.image !== '');
        const portNames = new Set((container.ports ?? []).map((p: Doc) => p.name));
        for (const probe of [container.readinessProbe, container.livenessProbe]) {
          if (probe?.httpGet !== undefined) assert.ok(portNames.has(probe.httpGet.port), `${deployment.metadata.name}: probe port ${probe.httpGet.port} is a named container port`);
        }
      }
    }
    for (const service of docs.filter((d) => d.kind === 'Service')) {
      const target = docs.find((d) => d.kind === 'Deployment' && Object.entries(service.spec.selector as Record<string, string>).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
      assert.ok(target !== undefined, `Service ${service.metadata.name} selects a Deployment's pods`);
      const portNames = new Set((target.spec.template.spec.containers as Doc[]).flatMap((c) => (c.ports ?? []).map((p: Doc) => p.name)));
      for (const p of service.spec.ports as Doc[]) assert.ok(portNames.has(p.targetPort), `Service ${service.metadata.name}: targetPort ${p.targetPort}`);
    }
  });

  test('Fulcrum: readiness on /readyz, liveness on /livez, the CLI command and the mounted ConfigMap config are valid, grace period covers the drain', () => {
    const deployment = find('Deployment', 'fulcrum');
    const pod = deployment.spec.template.spec;
    const container = (pod.containers as Doc[])[0]!;
    // /healthz is 503 when every backend is down: as a liveness probe it would restart every healthy balancer.
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/livez');
    assert.ok(container.resources.requests.cpu, 'a CPU request, which the HPA needs');

    const args = container.args as string[];
    assert.equal(args[0], 'start');
    assertFlagsAccepted(args, 'fulcrum container');
    const configPath = flagValue(args, '-c')!;
    const mount = (container.volumeMounts as Doc[]).find((m) => configPath.startsWith(`${m.mountPath}/`))!;
    const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name)!;
    const configMap = find('ConfigMap', volume.configMap.name);
    const text = configMap.data[configPath.slice(mount.mountPath.length + 1)] as string;
    assert.ok(text !== undefined, 'the ConfigMap has the file the args name');
    const file = join(tmp, 'fulcrum.yaml');
    writeFileSync(file, text);
    const env = Object.fromEntries((container.env as Doc[]).map((e) => [e.name, e.value]));
    const { config } = loadConfig({ file, env });
    assert.equal(config.state.store, 'redis');
    assert.equal(new URL(config.state.redis.url!).hostname, find('Service', 'redis').metadata.name);
    assert.equal(config.listen[0]!.port, container.ports[0].containerPort);

    const discovered = config.discovery?.kubernetes;
    assert.ok(discovered !== undefined, 'backends come from Kubernetes discovery');
    const backendService = find('Service', discovered.service);
    assert.ok((backendService.spec.ports as Doc[]).some((p) => p.name === discovered.port), 'the discovery port is a named port of that Service');
    const preStop = Number(container.lifecycle?.preStop?.exec?.command?.at(-1) ?? 0);
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > config.drainTimeout + preStop * 1000, 'the grace period outlasts preStop and drainTimeout');
  });

  test('RBAC: the pod\'s ServiceAccount may list and watch EndpointSlices', () => {
    const deployment = find('Deployment', 'fulcrum');
    const account = find('ServiceAccount', deployment.spec.template.spec.serviceAccountName);
    const binding = docs.find((d) => d.kind === 'RoleBinding' && (d.subjects as Doc[]).some((s) => s.kind === 'ServiceAccount' && s.name === account.metadata.name && s.namespace === account.metadata.namespace));
    assert.ok(binding !== undefined, 'a RoleBinding for the ServiceAccount');
    assert.equal(binding.roleRef.kind, 'Role');
    assert.equal(binding.roleRef.apiGroup, 'rbac.authorization.k8s.io');
    const role = find('Role', binding.roleRef.name);
    const rule = (role.rules as Doc[]).find((r) => r.apiGroups.includes('discovery.k8s.io') && r.resources.includes('endpointslices'));
    assert.ok(rule !== undefined);
    assert.ok(rule.verbs.includes('list') && rule.verbs.includes('watch'));
  });

  test('the HPA scales the Fulcrum Deployment; the demo backends run "fulcrum backend" with accepted flags on their probed port', () => {
    const hpa = find('HorizontalPodAutoscaler', 'fulcrum');
    assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
    find('Deployment', hpa.spec.scaleTargetRef.name);
    assert.ok(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas >= hpa.spec.minReplicas);

    const backend = (find('Deployment', 'demo-backend').spec.template.spec.containers as Doc[])[0]!;
    const args = backend.args as string[];
    assert.equal(args[0], 'backend');
    assertFlagsAccepted(args, 'demo-backend container');
    const httpPort = (backend.ports as Doc[]).find((p) => p.name === backend.readinessProbe.httpGet.port)!;
    assert.equal(Number(flagValue(args, '--port')), httpPort.containerPort);
    assert.equal(backend.readinessProbe.httpGet.path, '/health');
  });
});
