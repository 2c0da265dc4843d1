import { Ajv } from 'ajv';
import type { Test } from 'tap';
import type { V1Pod } from '@kubernetes/client-node';
import type { ActionContext, ActionModule } from '../../src/actions/action.ts';
import type { FalcoAlert } from '../../src/falco.ts';
import { createKubeClient, type KubeClient } from '../../src/kube.ts';
import { FakeKube, makePod, type FakePod } from '../helpers/fake-kube.ts';

export const podUid = '5f0a3c2e-9b1d-4e7a-8c6f-2b3d4e5f6a7b';
export const podName = 'web-7d59548d75-g9msc';
export const podPath = `/api/v1/namespaces/default/pods/${podName}`;

export const alert: FalcoAlert = {
  uuid: '8e2f6a7c-1d2b-4c3e-9f40-5a6b7c8d9e01',
  rule: 'Terminal shell in container',
  priority: 'Notice',
  output: 'A shell was spawned in a container with an attached terminal',
  time: '2025-06-12T09:21:07.11840296Z',
  source: 'syscall',
  tags: ['shell'],
  hostname: 'worker-node-2',
  outputFields: { 'k8s.ns.name': 'default', 'k8s.pod.name': podName, 'container.id': '2d90926af63e' },
};

/** The pod of a ReplicaSet, as the API server stores it. */
export function replicaSetPod(overrides: Partial<FakePod['metadata']> = {}): FakePod {
  const pod = makePod('default', podName, podUid);
  pod.metadata.labels = { app: 'web', 'pod-template-hash': '7d59548d75' };
  pod.metadata.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d59548d75', uid: 'rs-uid', controller: true }];
  Object.assign(pod.metadata, overrides);
  return pod;
}

export interface Cluster {
  readonly fake: FakeKube;
  readonly kube: KubeClient;
  /** The context the responder builds: the pod read from the fake just before. */
  context(overrides?: Partial<ActionContext>): Promise<ActionContext>;
}

/** A fake API over real HTTP holding `pod`, and a client on it; both stop when the test ends. */
export async function cluster(t: Test, pod: FakePod = replicaSetPod()): Promise<Cluster> {
  const fake = await new FakeKube().start();
  fake.addPod(pod);
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 2000 });
  t.teardown(async () => {
    kube.close();
    await fake.stop();
  });
  return {
    fake,
    kube,
    async context(overrides = {}) {
      const read: V1Pod = await kube.core.readNamespacedPod({ namespace: 'default', name: podName });
      fake.requests.length = 0;
      return contextFor(kube, read, overrides);
    },
  };
}

export function contextFor(kube: KubeClient | undefined, pod: V1Pod | undefined, overrides: Partial<ActionContext> = {}): ActionContext {
  return {
    kube,
    target: { namespace: 'default', name: podName, uid: undefined, containerId: '2d90926af63e' },
    pod,
    alert,
    ruleName: 'quarantine-shells',
    dryRun: false,
    retryAfterSeconds: 7,
    defaults: { gracePeriodSeconds: 1 },
    ...overrides,
  };
}

/** The parameter schema as the policy loader compiles it (ajv strict mode). */
export function validator(action: ActionModule): (parameters: unknown) => boolean {
  const validate = new Ajv({ allErrors: true, strict: true }).compile(action.parameters);
  return (parameters) => validate(parameters);
}
