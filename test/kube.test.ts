import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ApiException } from '@kubernetes/client-node';
import { createKubeClient, findKubeConfig, kubeFailure } from '../src/kube.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'drop-kube-'));
}

t.test('finds the cluster the way the issue orders it', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());

  t.test('the in-cluster service account first', async (t) => {
    // The client library reads these from process.env, as it does in a pod.
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
    process.env.KUBERNETES_SERVICE_PORT = '443';
    t.teardown(() => {
      for (const [name, value] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });
    const sa = tempDir();
    writeFileSync(join(sa, 'token'), 'sa-token');
    writeFileSync(join(sa, 'ca.crt'), '');
    writeFileSync(join(sa, 'namespace'), 'falco-drop\n');
    const home = tempDir();
    const found = findKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443', KUBECONFIG: '/nowhere' }, homeDir: home, serviceAccountDir: sa });
    t.equal(found.kubeConfig?.getCurrentCluster()?.server, 'https://10.96.0.1:443');
    t.match(found, { from: 'in-cluster service account', namespace: 'falco-drop' });
  });

  t.test('in a pod without a namespace file, no namespace', async (t) => {
    const sa = tempDir();
    writeFileSync(join(sa, 'token'), 'sa-token');
    const found = findKubeConfig({ env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, homeDir: tempDir(), serviceAccountDir: sa });
    t.match(found, { from: 'in-cluster service account', namespace: undefined });
  });

  t.test('then $KUBECONFIG (the first file of the list that exists)', async (t) => {
    const dir = tempDir();
    const file = join(dir, 'config');
    writeFileSync(file, fake.kubeConfigYaml());
    const found = findKubeConfig({ env: { KUBECONFIG: `${join(dir, 'missing')}:${file}` }, homeDir: tempDir(), serviceAccountDir: join(dir, 'no-sa') });
    t.equal(found.kubeConfig?.getCurrentCluster()?.server, fake.url);
    t.match(found, { from: `kubeconfig ${file}`, namespace: undefined });
  });

  t.test('then ~/.kube/config', async (t) => {
    const home = tempDir();
    mkdirSync(join(home, '.kube'));
    writeFileSync(join(home, '.kube', 'config'), fake.kubeConfigYaml());
    const found = findKubeConfig({ env: {}, homeDir: home, serviceAccountDir: join(home, 'no-sa') });
    t.equal(found.kubeConfig?.getCurrentCluster()?.server, fake.url);
  });

  t.test('none: a reason instead, for the dry-run line', async (t) => {
    const home = tempDir();
    const none = findKubeConfig({ env: {}, homeDir: home, serviceAccountDir: join(home, 'no-sa') });
    t.equal(none.kubeConfig, undefined);
    t.match(none, { reason: `no in-cluster service account and no kubeconfig at ${join(home, '.kube', 'config')}` });
    const listed = findKubeConfig({ env: { KUBECONFIG: '/a:/b' }, homeDir: home, serviceAccountDir: join(home, 'no-sa') });
    t.match(listed, { reason: /KUBECONFIG \(\/a:\/b\)/ });
  });

  t.test('a kubeconfig with no current cluster is none', async (t) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config'), 'apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n');
    const found = findKubeConfig({ env: { KUBECONFIG: join(dir, 'config') }, homeDir: dir, serviceAccountDir: join(dir, 'no-sa') });
    t.match(found, { kubeConfig: undefined, reason: /has no current cluster/ });
  });
});

t.test('reuses its connections for many API calls instead of one connection per call', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addPod(makePod('default', 'web', 'uid-1'));
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 1000 });
  t.teardown(() => kube.close());
  for (let i = 0; i < 20; i++) await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' });
  t.equal(fake.requests.length, 20);
  // undici opens a second connection when the second call is dispatched before its pool has seen
  // the first connection go idle; from then on every call reuses one of the two. The library's
  // own dispatcher would open one connection per call (20).
  t.ok(fake.connections <= 2, `twenty calls, ${fake.connections} TCP connection(s)`);
  t.equal(fake.requests[0]?.authorization, 'Bearer test-token');
});

t.test('speaks TLS as the kubeconfig says: its CA, its client certificate, one pool', async (t) => {
  const fake = await new FakeKube({ tls: true }).start();
  t.teardown(() => fake.stop());
  fake.addPod(makePod('default', 'web', 'uid-1'));

  t.test('trusts the server through certificate-authority-data and reuses its connections', async (t) => {
    const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
    t.teardown(() => kube.close());
    const before = fake.connections;
    for (let i = 0; i < 10; i++) t.equal((await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' })).metadata?.uid, 'uid-1');
    t.ok(fake.connections - before <= 2, `ten calls, ${fake.connections - before} TLS connection(s)`);
    t.equal(fake.requests.at(-1)?.clientCertificate, undefined, 'a token, no client certificate');
  });

  t.test('authenticates with client-certificate-data', async (t) => {
    const kube = createKubeClient(fake.kubeConfig({ clientCertificate: true }), { timeoutMs: 2000 });
    t.teardown(() => kube.close());
    await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' });
    t.equal(fake.requests.at(-1)?.clientCertificate, 'drop');
    t.equal(fake.requests.at(-1)?.authorization, undefined);
  });

  t.test('without the CA, a server certificate no one vouches for is refused: unreachable, retried', async (t) => {
    const kube = createKubeClient(fake.kubeConfig({ trustCa: false }), { timeoutMs: 2000 });
    t.teardown(() => kube.close());
    const requests = fake.requests.length;
    const error = await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' }).catch((e: unknown) => e);
    const failure = kubeFailure(error, 'read pod default/web', 5);
    t.equal(failure.status, 503);
    t.match(failure.message, /read pod default\/web: Kubernetes API unreachable: fetch failed: .*certificate/);
    t.equal(fake.requests.length, requests, 'nothing reached the server');
  });
});

t.test('every call times out', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.fail({ method: 'GET', path: /pods/, delayMs: 2000, status: 200, body: {} });
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 100 });
  t.teardown(() => kube.close());
  const started = Date.now();
  const error = await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' }).catch((e: unknown) => e);
  t.ok(Date.now() - started < 1000, 'aborted long before the server answered');
  const failure = kubeFailure(error, 'read pod default/web', 5);
  t.equal(failure.status, 503);
  t.match(failure.message, /read pod default\/web: Kubernetes API timed out/);
});

t.test('maps Kubernetes answers to the Broker retry rule', async (t) => {
  const status = (code: number, message: string) => JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });
  const cases: { error: unknown; code: string; status: number; retryAfter: number | undefined; message: RegExp }[] = [
    { error: new ApiException(503, 'x', status(503, 'etcd down'), {}), code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfter: 5, message: /answered 503: etcd down/ },
    { error: new ApiException(408, 'x', status(408, 'slow'), {}), code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfter: 5, message: /408/ },
    { error: new ApiException(429, 'x', status(429, 'slow down'), { 'retry-after': '12' }), code: 'DROP_K8S_THROTTLED', status: 429, retryAfter: 12, message: /slow down/ },
    { error: new ApiException(429, 'x', status(429, 'slow down'), { 'retry-after': 'soon' }), code: 'DROP_K8S_THROTTLED', status: 429, retryAfter: 5, message: /429/ },
    { error: new ApiException(403, 'x', status(403, 'forbidden'), {}), code: 'DROP_K8S_REJECTED', status: 422, retryAfter: undefined, message: /403: forbidden/ },
    { error: new ApiException(422, 'x', 'not json at all', {}), code: 'DROP_K8S_REJECTED', status: 422, retryAfter: undefined, message: /422: not json at all/ },
    { error: new ApiException(400, 'x', '{"kind":"Status"}', {}), code: 'DROP_K8S_REJECTED', status: 422, retryAfter: undefined, message: /answered 400: HTTP 400/ },
    { error: new ApiException(400, 'x', undefined as unknown as string, {}), code: 'DROP_K8S_REJECTED', status: 422, retryAfter: undefined, message: /HTTP 400/ },
    { error: new ApiException(502, 'x', '"Bad Gateway"', {}), code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfter: 5, message: /answered 502: "Bad Gateway"/ },
    { error: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfter: 5, message: /unreachable: connect ECONNREFUSED/ },
    {
      error: new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) }),
      code: 'DROP_K8S_UNAVAILABLE',
      status: 503,
      retryAfter: 5,
      message: /unreachable: fetch failed: connect ECONNREFUSED 127\.0\.0\.1:1$/,
    },
    { error: 'a string', code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfter: 5, message: /unreachable: a string/ },
  ];
  for (const c of cases) {
    const failure = kubeFailure(c.error, 'delete pod a/b', 5);
    t.equal(failure.code, c.code, c.message.source);
    t.equal(failure.status, c.status);
    t.equal(failure.retryAfterSeconds, c.retryAfter);
    t.match(failure.message, c.message);
    t.equal(failure.retryable, c.status !== 422);
  }
});
