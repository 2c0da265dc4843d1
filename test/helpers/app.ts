import { Writable } from 'node:stream';
import { pino } from 'pino';
import { buildApp, type AppOptions } from '../../src/app.ts';
import { SenderAuth } from '../../src/auth.ts';
import { createKubeClient, tokenReviewer, type KubeClient } from '../../src/kube.ts';
import { parsePolicy, loadPolicy, type Policy } from '../../src/policy.ts';
import { buildProtectedNamespaces } from '../../src/protection.ts';
import { createSafety, type ClusterSafety, type MemorySafety } from '../../src/safety.ts';
import { EvidenceStore } from '../../src/state/evidence.ts';
import type { Test } from 'tap';
import { FakeKube, type FakePod } from './fake-kube.ts';

export interface TestAppOptions {
  /** A running fake API server; without one the app runs in dry-run with no cluster. */
  readonly fake?: FakeKube;
  readonly policyYaml?: string;
  readonly dryRun?: boolean;
  readonly timeoutMs?: number;
  readonly ownNamespace?: string;
  /** The clock: a fixed time, or a function read on every call (to move time in a test). */
  readonly now?: Date | (() => Date);
  /** Turns sender authentication on, as DROP_AUDIENCE (and DROP_ALLOWED_SENDERS) do; needs `fake`. */
  readonly senderAuth?: { readonly audience: string; readonly allowedSenders?: readonly string[] };
  /** This replica's name as the holder of its claims (default `drop-test`). */
  readonly identity?: string;
}

export interface TestApp {
  readonly app: ReturnType<typeof buildApp>;
  /** Every log line the app wrote, parsed. */
  readonly logs: Record<string, unknown>[];
  readonly kube: KubeClient | undefined;
  readonly policy: Policy;
  /** Where its claims and budget live: Leases on the fake API when it acts, else memory. */
  readonly safety: ClusterSafety | MemorySafety;
  close(): Promise<void>;
}

/** Builds the app as main.ts does, with a log that tests can read. */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const logs: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'info' }, stream);
  const policy = options.policyYaml ? parsePolicy(options.policyYaml, 'test-policy.yaml') : await loadPolicy(undefined);
  const kube = options.fake ? createKubeClient(options.fake.kubeConfig(), { timeoutMs: options.timeoutMs ?? 2000 }) : undefined;
  const dryRun = options.dryRun ?? !kube;
  const now = options.now;
  const clock = { now: () => (typeof now === 'function' ? now() : (now ?? new Date('2025-06-12T09:21:08Z'))) };
  const ownNamespace = options.ownNamespace ?? 'falco-drop';
  const safety = createSafety({
    kube,
    dryRun,
    namespace: ownNamespace,
    identity: options.identity ?? 'drop-test',
    clock,
    retryAfterSeconds: 5,
    destructivePerMinute: policy.guards.destructivePerMinute,
    maxAlertAgeSeconds: policy.guards.maxAlertAgeSeconds,
  });
  const appOptions: AppOptions = {
    logger,
    replySource: '/falco-drop/falco-drop/drop',
    redelivery: { max: 1000, ttlMs: 60_000 },
    dryRunReason: dryRun ? (kube ? 'DROP_DRY_RUN=true' : 'no cluster') : undefined,
    senderAuth:
      options.senderAuth && kube
        ? new SenderAuth({
            audience: options.senderAuth.audience,
            allowedSenders: options.senderAuth.allowedSenders,
            namespace: ownNamespace,
            review: tokenReviewer(kube, 5),
            clock,
          })
        : undefined,
    responder: {
      policy,
      kube,
      dryRun,
      protectedNamespaces: buildProtectedNamespaces(policy.protectedNamespaces, ownNamespace),
      gracePeriodSeconds: 1,
      retryAfterSeconds: 5,
      clock,
      safety,
      evidence: kube && !dryRun ? new EvidenceStore({ core: kube.core, namespace: ownNamespace, clock, retryAfterSeconds: 5 }) : undefined,
    },
  };
  const app = buildApp(appOptions);
  await app.ready();
  return {
    app,
    logs,
    kube,
    policy,
    safety,
    close: async () => {
      await app.close();
      kube?.close();
    },
  };
}

/** Lower-cases header names, as Node delivers them. */
export function lower(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

/**
 * A fake API server holding namespace `default` and `pods`, and the app pointed at it (as
 * createTestApp builds it); both stop when the test ends.
 */
export async function createFakeAndApp(t: Test, pods: readonly FakePod[], options: TestAppOptions = {}): Promise<{ fake: FakeKube; drop: TestApp }> {
  const fake = await new FakeKube().start();
  fake.addNamespace('default');
  for (const pod of pods) fake.addPod(pod);
  const drop = await createTestApp({ fake, ...options });
  t.teardown(async () => {
    await drop.close();
    await fake.stop();
  });
  return { fake, drop };
}
