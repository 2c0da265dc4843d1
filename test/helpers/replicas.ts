/**
 * Several drop replicas in one process: app instances built as main.ts builds them (each its
 * own identity and its own KubeClient, so its own connections), sharing one fake API server
 * and one clock the test moves. Deliveries are sent as the Broker sends them.
 */
import type { Test } from 'tap';
import type { CoreV1Api } from '@kubernetes/client-node';
import { createTestApp, lower, type TestApp } from './app.ts';
import { FakeKube, type FakePod, type RecordedRequest } from './fake-kube.ts';
import { brokerHeaders, falcoPayload, type PayloadOptions } from './falco.ts';

/** Where the shared clock starts: a second after the default alert's time. */
export const startMs = Date.parse('2025-06-12T09:21:08Z');

/** The clock every replica of a test reads (each app calls `now` on every use). */
export class SharedClock {
  constructor(public ms = startMs) {}
  readonly now = (): Date => new Date(this.ms);
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

/** One CloudEvent as the Broker delivers it: every copy and every retry sends these same bytes. */
export interface Delivery {
  readonly id: string;
  readonly pod: string;
  readonly headers: Record<string, string>;
  readonly payload: string;
}

/** A Terminal-shell alert about `pod` (namespace `default`) raised at `timeMs`, as CloudEvent `id`. */
export function alertAbout(id: string, pod: string, timeMs: number, options: PayloadOptions = {}): Delivery {
  const payload = falcoPayload({
    uuid: `uuid-${id}`,
    ...options,
    time: new Date(timeMs).toISOString(),
    fields: { 'k8s.pod.name': pod, ...options.fields },
  });
  return { id, pod, headers: lower(brokerHeaders(id, options.rule ? { rule: options.rule } : {})), payload };
}

/** One replica: its current app instance (a restart replaces it), under one identity. */
export interface Replica {
  readonly identity: string;
  drop: TestApp;
}

export interface ReplicaSet {
  readonly fake: FakeKube;
  /** Every app instance started, in order, closed or not (their logs stay readable). */
  readonly instances: TestApp[];
  readonly clock: SharedClock;
  readonly replicas: Replica[];
  /** Closes the replica's app and starts a new one with the same identity (a restarted container). */
  restart(index: number): Promise<TestApp>;
  /** Starts another app instance on the same fake and clock (not added to `replicas`). */
  start(identity: string): Promise<TestApp>;
  /**
   * Kills an app instance as far as the cluster can tell: its client is destroyed, so nothing
   * it does from now on (record, release, give back the budget) reaches the API server, and the
   * app closes. What it goes on doing in this process reaches no one.
   */
  crash(drop: TestApp): Promise<void>;
  /** Closes every app still open and stops the fake. */
  close(): Promise<void>;
}

export interface ReplicaOptions {
  readonly count: number;
  readonly pods?: readonly FakePod[];
  readonly policyYaml?: string;
  /** The fake keeps a deleted pod readable, terminating (a DELETE with a grace period). */
  readonly terminatingPods?: boolean;
}

/** A fake API server with namespace `default` and `pods`, and `count` replicas `drop-0`…; with `t`, all stop when the test ends. */
export async function startReplicas(t: Test | undefined, options: ReplicaOptions): Promise<ReplicaSet> {
  const fake = await new FakeKube({ terminatingPods: options.terminatingPods }).start();
  fake.addNamespace('default');
  for (const pod of options.pods ?? []) fake.addPod(pod);
  const clock = new SharedClock();
  const open = new Set<TestApp>();
  const instances: TestApp[] = [];
  const start = async (identity: string): Promise<TestApp> => {
    const drop = await createTestApp({ fake, identity, now: clock.now, policyYaml: options.policyYaml, timeoutMs: 5000 });
    open.add(drop);
    instances.push(drop);
    return drop;
  };
  const replicas: Replica[] = [];
  for (let i = 0; i < options.count; i++) replicas.push({ identity: `drop-${i}`, drop: await start(`drop-${i}`) });
  const close = async (): Promise<void> => {
    for (const drop of [...open]) await stop(drop, open);
    await fake.stop();
  };
  t?.teardown(close);
  return {
    fake,
    instances,
    clock,
    replicas,
    start,
    close,
    crash: async (drop) => {
      drop.kube!.close();
      // Its outcome records would be tried again until their working time is over: nothing
      // reaches the API server any more, so it gives them up at once.
      drop.app.background.abandon();
      await stop(drop, open);
    },
    restart: async (index) => {
      const replica = replicas[index]!;
      await stop(replica.drop, open);
      replica.drop = await start(replica.identity);
      return replica.drop;
    },
  };
}

async function stop(drop: TestApp, open: Set<TestApp>): Promise<void> {
  if (!open.delete(drop)) return;
  await drop.close();
}

/** Sends one delivery to one app instance, as the Broker does (binary mode). */
export function send(drop: TestApp, delivery: Delivery) {
  return drop.app.inject({ method: 'POST', url: '/', headers: delivery.headers, payload: delivery.payload });
}

/** The pod DELETEs the fake received (each request, whatever it was answered). */
export function podDeletes(fake: FakeKube): RecordedRequest[] {
  return fake.workRequests.filter((r) => r.method === 'DELETE' && r.path.includes('/pods/'));
}

/** The API calls that change a workload (pods, NetworkPolicies, Events): every non-GET but Leases. */
export function workWrites(fake: FakeKube): RecordedRequest[] {
  return fake.workRequests.filter((r) => r.method !== 'GET');
}

/**
 * Holds this app's pod DELETEs in its own client until `release()`: the replica has won its
 * claim and taken its budget and is about to delete, and waits there for as long as the test
 * needs (no timer). `reached` resolves when the first DELETE is held. `then` runs when the
 * DELETE has been answered, before the app sees the answer (to crash the replica there).
 */
export function holdPodDeletes(drop: TestApp, then?: () => void): { readonly reached: Promise<void>; release(): void; readonly held: () => number } {
  const core = drop.kube!.core as CoreV1Api;
  const original = core.deleteNamespacedPod.bind(core);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let arrive!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  let held = 0;
  core.deleteNamespacedPod = (async (...args: Parameters<CoreV1Api['deleteNamespacedPod']>) => {
    held++;
    arrive();
    await gate;
    const answer = await original(...args);
    then?.();
    return answer;
  }) as CoreV1Api['deleteNamespacedPod'];
  return { reached, release: open, held: () => held };
}

/** The parsed JSON body of an answer (an error's or a reply's). */
export function bodyOf(res: { body: string }): Record<string, any> {
  return JSON.parse(res.body) as Record<string, any>;
}
