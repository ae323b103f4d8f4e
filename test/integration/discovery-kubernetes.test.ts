/**
 * Kubernetes discovery through the real @kubernetes/client-node client,
 * against a local server speaking the API's EndpointSlice list and watch.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { startBalancer, get, waitFor, type TestBalancer } from '../helpers/balancer.js';
import { startFakeKube, type FakeKube, type SliceEndpoint } from '../helpers/fake-kube.js';
import { startLoopbackBackends, type LoopbackBackends } from '../helpers/loopback-backends.js';

const WATCH_PATH = '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices';

function poolIds(tb: TestBalancer): string[] {
  return tb.balancer.pool.snapshot.map((b) => b.id).sort();
}

describe('Kubernetes discovery', () => {
  let kube: FakeKube;
  let lb: LoopbackBackends;
  let kubeconfig: string;
  const id = (i: number): string => `k8s-${lb.address(i)}-${lb.port}`;
  const slice = (name: string, endpoints: SliceEndpoint[], service = 'web'): void => {
    kube.apply({ name, service, namespace: 'shop', endpoints, ports: [{ name: 'metrics', port: 9090 }, { name: 'http', port: lb.port }] });
  };
  const lists = (): number => kube.requests.filter((r) => r.path === WATCH_PATH && r.query.get('watch') !== 'true').length;
  const watches = (): URLSearchParams[] => kube.requests.filter((r) => r.path === WATCH_PATH && r.query.get('watch') === 'true').map((r) => r.query);

  before(async () => {
    kube = await startFakeKube();
    lb = await startLoopbackBackends(3);
    kubeconfig = kube.writeKubeconfig('shop');
  });
  after(async () => {
    await lb.close();
    await kube.close();
    rmSync(dirname(kubeconfig), { recursive: true, force: true });
  });

  test('ready endpoints join, terminating ones are drained (in-flight completes), deleted slices leave', async () => {
    slice('web-a', [{ ip: lb.address(0) }]);
    slice('other-a', [{ ip: lb.address(2) }], 'other');
    const tb = await startBalancer({ discovery: { kubernetes: { service: 'web', port: 'http', kubeconfig } } });
    try {
      await waitFor(() => poolIds(tb).length === 1, 10_000);
      assert.deepEqual(poolIds(tb), [id(0)], 'only the Service\'s endpoints, on the port named "http"');
      const list = kube.requests.find((r) => r.path === WATCH_PATH)!;
      assert.equal(list.query.get('labelSelector'), 'kubernetes.io/service-name=web');
      assert.equal(list.authorization, `Bearer ${kube.token}`);
      await waitFor(() => kube.openWatches === 1);
      assert.equal(watches()[0]!.get('resourceVersion'), String(kube.resourceVersion), 'the watch starts at the list\'s version');

      // A slow request to the endpoint that is about to terminate.
      const leaving = tb.balancer.pool.get(id(0))!;
      const slow = get(`${tb.url}/delay?ms=1500`);
      await waitFor(() => leaving.state.inflight === 1);
      slice('web-a', [{ ip: lb.address(0), ready: false, serving: true, terminating: true }, { ip: lb.address(1) }]);
      await waitFor(() => tb.balancer.pool.get(id(1)) !== undefined);
      assert.equal(tb.balancer.pool.get(id(0)), leaving, 'a terminating endpoint stays while its request is in flight');
      assert.equal(leaving.removeWhenDrained, true);
      assert.equal((await get(`${tb.url}/`)).headers['x-backend'], 'Backend 2');
      const res = await slow;
      assert.equal(res.status, 200);
      assert.equal(res.body, 'Hello from Backend 1 after 1500ms');
      await waitFor(() => tb.balancer.pool.get(id(0)) === undefined);

      // A second slice adds an endpoint; deleting the first one removes its endpoint.
      slice('web-b', [{ ip: lb.address(2) }]);
      await waitFor(() => tb.balancer.pool.get(id(2)) !== undefined);
      const staying = tb.balancer.pool.get(id(2))!;
      kube.remove('web-a', 'shop');
      await waitFor(() => tb.balancer.pool.get(id(1)) === undefined);
      assert.deepEqual(poolIds(tb), [id(2)]);
      assert.equal(tb.balancer.pool.get(id(2)), staying);
      assert.equal((await get(`${tb.url}/`)).headers['x-backend'], 'Backend 3');
      assert.equal(lists(), 1, 'all of it through one watch');
    } finally {
      await tb.close();
      kube.remove('web-b', 'shop');
      kube.remove('other-a', 'shop');
    }
  });

  test('a dropped watch resumes from the last version seen (bookmarks included); 410 Gone lists again', async () => {
    const listsBefore = lists();
    const watchesBefore = watches().length;
    slice('web-c', [{ ip: lb.address(0) }]);
    const tb = await startBalancer({ discovery: { kubernetes: { service: 'web', port: lb.port, kubeconfig } } });
    try {
      await waitFor(() => poolIds(tb).length === 1 && kube.openWatches === 1, 10_000);
      assert.equal(lists(), listsBefore + 1);

      // Dropped: the change made while it is down arrives on the resumed watch, without a new list.
      kube.dropWatches();
      slice('web-c', [{ ip: lb.address(0) }, { ip: lb.address(1) }]);
      const versionOfChange = kube.resourceVersion;
      await waitFor(() => tb.balancer.pool.get(id(1)) !== undefined, 10_000);
      assert.equal(lists(), listsBefore + 1, 'no new list after a dropped watch');
      await waitFor(() => kube.openWatches === 1);
      assert.ok(Number(watches().at(-1)!.get('resourceVersion')) < versionOfChange, 'resumed from before the change, so the change was replayed');

      // A bookmark moves the version on past changes the selector filters out.
      slice('unrelated', [{ ip: lb.address(2) }], 'other');
      kube.bookmark();
      const bookmarked = kube.resourceVersion;
      await new Promise((r) => setTimeout(r, 100));
      kube.dropWatches();
      await waitFor(() => watches().length >= watchesBefore + 3 && kube.openWatches === 1, 10_000);
      assert.equal(watches().at(-1)!.get('resourceVersion'), String(bookmarked));

      // Expired: the API server no longer has the history; the client lists again and sees the new state.
      kube.dropWatches();
      slice('unrelated', [{ ip: lb.address(1) }], 'other');
      kube.forgetHistory();
      slice('web-c', [{ ip: lb.address(2) }]);
      await waitFor(() => poolIds(tb).length === 1 && tb.balancer.pool.get(id(2)) !== undefined, 10_000);
      assert.equal(lists(), listsBefore + 2, 'listed again after 410 Gone');
      const status = JSON.parse((await get(`${tb.url}/status`)).body) as { discovery: { source: string; target: string; lastError: string | null }[] };
      assert.equal(status.discovery[0]!.source, 'kubernetes');
      assert.equal(status.discovery[0]!.target, 'shop/web');
      assert.equal(status.discovery[0]!.lastError, null);
    } finally {
      await tb.close();
      kube.remove('web-c', 'shop');
      kube.remove('unrelated', 'shop');
    }
  });
});
