import type { Test } from 'tap';
import { createKubeClient } from '../../src/kube.ts';
import { BudgetStore } from '../../src/state/budget.ts';
import { ClaimStore, type ClaimRequest } from '../../src/state/claims.ts';
import { FakeKube } from '../helpers/fake-kube.ts';

export const namespace = 'falco-drop';
export const leasesPath = `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;

/** A clock the test moves; every replica of one test reads the same one. */
export class ManualClock {
  constructor(public ms = Date.UTC(2026, 10, 26, 8, 0, 0, 0)) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export interface Replica {
  readonly identity: string;
  readonly claims: ClaimStore;
  readonly budget: BudgetStore;
}

/** A fake API server and replicas of the state store talking to it, each over its own connections. */
export async function setup(t: Test, options: { perMinute?: number; attempts?: number } = {}) {
  const fake = await new FakeKube().start();
  const clock = new ManualClock();
  const closers: (() => void)[] = [];
  t.teardown(async () => {
    for (const close of closers) close();
    await fake.stop();
  });
  const replica = (identity: string, url = fake.url): Replica => {
    const kubeConfig = fake.kubeConfig();
    if (url !== fake.url) kubeConfig.clusters[0] = { ...kubeConfig.clusters[0]!, server: url };
    const kube = createKubeClient(kubeConfig, { timeoutMs: 5000 });
    closers.push(() => kube.close());
    const common = { leases: kube.coordination, namespace, identity, clock, retryAfterSeconds: 7, ...(options.attempts ? { attempts: options.attempts } : {}) };
    return { identity, claims: new ClaimStore(common), budget: new BudgetStore({ ...common, perMinute: options.perMinute ?? 3 }) };
  };
  return { fake, clock, replica };
}

export function request(overrides: Partial<ClaimRequest> = {}): ClaimRequest {
  return {
    rule: 'terminate shells in prod',
    pod: { namespace: 'shop', name: 'mysql-0', uid: '6f1c2d3e-0000-4000-8000-000000000001' },
    event: { source: 'falco.org/falcosidekick', id: 'e-1' },
    cooldownSeconds: 60,
    ...overrides,
  };
}
