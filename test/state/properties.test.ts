import t from 'tap';
import fc from 'fast-check';
import { createKubeClient } from '../../src/kube.ts';
import { DropError } from '../../src/errors.ts';
import { BudgetStore } from '../../src/state/budget.ts';
import { ClaimStore } from '../../src/state/claims.ts';
import { FakeKube } from '../helpers/fake-kube.ts';
import { ManualClock, namespace } from './harness.ts';

// Interleavings of deliveries across three replicas sharing one API server, with a clock that
// moves between rounds: in each round up to four deliveries run at once on any replicas; each
// winner acts and records, crashes (records nothing), or fails retryably (gives its budget back
// and releases its claim); a sweep may run alongside. Whatever the interleaving:
// - one response per (rule, pod) per cooldown: a second win within the cooldown only follows a
//   release, or resumes a claim whose holder recorded nothing and whose working time is over;
// - the destructive budget is never exceeded in any minute, counted over all replicas.

const cooldownSeconds = 60;
const workingSeconds = 30;
const perMinute = 3;

const delivery = fc.record({
  replica: fc.integer({ min: 0, max: 2 }),
  rule: fc.constantFrom('kill shells', 'isolate miners'),
  pod: fc.constantFrom('p1', 'p2'),
  event: fc.integer({ min: 0, max: 3 }),
  end: fc.constantFrom('act', 'crash', 'fail'),
  destructive: fc.integer({ min: 0, max: 2 }),
});
const round = fc.record({ advance: fc.integer({ min: 0, max: 45 }), sweep: fc.boolean(), deliveries: fc.array(delivery, { minLength: 1, maxLength: 4 }) });

interface Win {
  readonly key: string;
  readonly at: number;
  readonly resumed: boolean;
  recorded: boolean;
  released: boolean;
}

t.test('across replicas and any interleaving: one response per (rule, pod) per cooldown, and the budget holds', async (t) => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(round, { minLength: 1, maxLength: 10 }), async (rounds) => {
      runs++;
      const fake = await new FakeKube().start();
      const clock = new ManualClock();
      const clients = [0, 1, 2].map(() => createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 }));
      try {
        const replicas = clients.map((kube, i) => {
          const common = { leases: kube.coordination, namespace, identity: `drop-${i}`, clock, retryAfterSeconds: 1 };
          return { claims: new ClaimStore({ ...common, workingSeconds }), budget: new BudgetStore({ ...common, perMinute }) };
        });
        const wins: Win[] = [];
        const grants: { at: number; count: number }[] = [];
        const retried = (error: unknown) => {
          if (!(error instanceof DropError && error.retryable)) throw error;
        };
        for (const { advance, sweep, deliveries } of rounds) {
          clock.advance(advance);
          const at = clock.ms;
          const work = deliveries.map(async (d) => {
            const store = replicas[d.replica]!;
            const result = await store.claims
              .claim({ rule: d.rule, pod: { namespace: 'shop', name: d.pod, uid: `uid-${d.pod}` }, event: { source: 'falco', id: `${d.pod}-${d.event}` }, cooldownSeconds })
              .catch(retried);
            if (!result?.won) return;
            const win: Win = { key: `${d.rule}/${d.pod}`, at, resumed: result.resumed, recorded: false, released: false };
            wins.push(win);
            if (d.end === 'crash') return;
            const grant = d.destructive > 0 ? await store.budget.take(d.destructive).catch(retried) : undefined;
            if (grant?.ok) grants.push({ at, count: d.destructive });
            if (d.end === 'fail' || (grant !== undefined && !grant.ok)) {
              // A retryable failure (or no budget left): give the slots back and release the claim.
              if (grant?.ok) {
                await grant.giveBack(d.destructive);
                grants.push({ at, count: -d.destructive });
              }
              win.released = await store.claims.release(result.claim);
              return;
            }
            win.recorded = (await store.claims.record(result.claim, { done: true })).recorded;
          });
          if (sweep) work.push(replicas[0]!.claims.sweep(clock.now()).then(() => undefined));
          await Promise.all(work);
        }
        // One response per (rule, pod) per cooldown.
        const byKey = new Map<string, Win[]>();
        for (const w of wins) byKey.set(w.key, [...(byKey.get(w.key) ?? []), w]);
        for (const list of byKey.values()) {
          for (let i = 1; i < list.length; i++) {
            const before = list[i - 1]!;
            const after = list[i]!;
            const gap = (after.at - before.at) / 1000;
            const allowed = gap >= cooldownSeconds || before.released || (!before.recorded && after.resumed && gap >= workingSeconds);
            if (!allowed) throw new Error(`two wins for ${after.key} ${gap} s apart: ${JSON.stringify([before, after])}`);
          }
        }
        // The budget: in any minute, the slots held (taken minus given back) never exceed it.
        for (const g of grants) {
          const held = grants.filter((h) => h.at > g.at - 60_000 && h.at <= g.at).reduce((sum, h) => sum + h.count, 0);
          if (held > perMinute) throw new Error(`${held} destructive actions in the minute up to ${new Date(g.at).toISOString()}`);
        }
        const annotation = fake.leases.get(`${namespace}/drop-budget`)?.metadata.annotations?.['falco-drop/destructive-actions'];
        if (annotation !== undefined && (JSON.parse(annotation) as number[]).filter((x) => x > clock.ms - 60_000).length > perMinute) throw new Error('the stored budget holds more than N');
      } finally {
        for (const kube of clients) kube.close();
        await fake.stop();
      }
    }),
    { numRuns: 40, seed: 20261126, endOnFailure: true },
  );
  t.equal(runs, 40);
});
