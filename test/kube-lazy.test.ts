// The Kubernetes client's typed APIs are built on the first call (src/kube.ts, src/kube-apis.ts):
// what a caller sees is the same as with the APIs built up front.
import t from 'tap';
import { createKubeClient } from '../src/kube.ts';
import { FakeKube, makePod } from './helpers/fake-kube.ts';

t.test('the first calls, made at once, all reach the API server and are answered', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addPod(makePod('default', 'web', 'uid-1'));
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
  t.teardown(() => kube.close());
  t.equal(fake.requests.length, 0, 'building the client calls nothing');
  const [pod, namespaces] = await Promise.all([kube.core.readNamespacedPod({ namespace: 'default', name: 'web' }), kube.core.readNamespacedPod({ namespace: 'default', name: 'web' })]);
  t.equal(pod.metadata?.uid, 'uid-1');
  t.equal(namespaces.metadata?.uid, 'uid-1');
  t.equal(fake.requests.length, 2);
  kube.close();
  t.match(await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' }).catch((error: unknown) => error), { message: 'the Kubernetes client is closed' }, 'closed, it calls nothing');
  t.equal(fake.requests.length, 2);
});

t.test('an API object is not a promise: awaiting it does not call the API', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
  t.teardown(() => kube.close());
  t.equal((kube.core as unknown as { then?: unknown }).then, undefined);
  t.equal(await kube.core, kube.core);
  t.equal(fake.requests.length, 0);
});

t.test('closed while its APIs are still loading, a call waiting for them fails and opens no connection', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addPod(makePod('default', 'web', 'uid-1'));
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
  const call = kube.core.readNamespacedPod({ namespace: 'default', name: 'web' }).catch((error: unknown) => error);
  kube.close();
  t.match(await call, { message: 'the Kubernetes client is closed' });
  t.equal(fake.connections, 0, 'no connection was opened after close()');
  t.match(await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' }).catch((error: unknown) => error), { message: 'the Kubernetes client is closed' }, 'nor by a later call');
});

t.test('a method set on an API object is the one called, as on an API built up front (a wrapper, as the tests put around a call)', async (t) => {
  const fake = await new FakeKube().start();
  t.teardown(() => fake.stop());
  fake.addPod(makePod('default', 'web', 'uid-1'));
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
  t.teardown(() => kube.close());
  const original = kube.core.readNamespacedPod.bind(kube.core);
  const seen: string[] = [];
  kube.core.readNamespacedPod = (async (...args: Parameters<typeof original>) => {
    seen.push(args[0].name);
    return original(...args);
  }) as typeof original;
  t.equal((await kube.core.readNamespacedPod({ namespace: 'default', name: 'web' })).metadata?.uid, 'uid-1');
  t.same(seen, ['web'], 'the wrapper ran, then the API was called');
  t.equal(fake.requests.length, 1);
});
