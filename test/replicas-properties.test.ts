// Interleavings of deliveries across replicas and restarts, through the real apps (the stores
// alone are covered by test/state/properties.test.ts). Three app instances share one fake API
// server and one clock. Each round moves the clock 0-45 s, may restart a replica (close its app,
// start a new one with the same identity: memory gone, Leases kept), and sends 1-4 deliveries
// at once to random replicas, among three pods and three events per pod (a repeated event is a
// redelivery), some with a 503 injected on that pod's DELETE (a failure the Broker retries).
// Whatever the interleaving, counted from the fake's request log with the shared clock's time:
// - at most one DELETE per pod UID per cooldown (60 s);
// - never more DELETEs than the budget (2) in any 60 s window.
// The fake keeps a deleted pod readable (terminating), so a pod can be deleted again once its
// cooldown is over: each run sees several DELETEs per pod, and the properties have work to do.
import t from 'tap';
import fc from 'fast-check';
import { makePod, type Fault, type FakeKube } from './helpers/fake-kube.ts';
import { alertAbout, send, startMs, startReplicas, type Delivery } from './helpers/replicas.ts';

const cooldownSeconds = 60;
const perMinute = 2;
const policyYaml = [
  `guards: {cooldownSeconds: ${cooldownSeconds}, destructivePerMinute: ${perMinute}, maxAlertAgeSeconds: 3600}`,
  'rules:',
  '  - name: kill',
  '    match: {rules: ["Terminal shell in container"]}',
  '    actions: [{action: delete}]',
].join('\n');
const pods = ['web-0', 'web-1', 'web-2'];

const delivery = fc.record({
  replica: fc.integer({ min: 0, max: 2 }),
  pod: fc.integer({ min: 0, max: 2 }),
  event: fc.integer({ min: 0, max: 2 }),
  // One delivery in five meets a 503 on the pod's DELETE.
  fault: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
});
const round = fc.record({
  advance: fc.integer({ min: 0, max: 45 }),
  // One round in four restarts replica 0, 1 or 2.
  restart: fc.integer({ min: 0, max: 11 }).map((n) => (n < 3 ? n : undefined)),
  deliveries: fc.array(delivery, { minLength: 1, maxLength: 4 }),
});

/**
 * The faults still waiting in the fake, per pod. The fake records every request but not what
 * it answered, so this is how a DELETE answered by an injected 503 is told from one the API
 * server carried out: the faults a round used up are the DELETEs of that round that failed.
 */
function pendingFaults(fake: FakeKube, pod: string): number {
  const faults = (fake as unknown as { faults: Fault[] }).faults;
  return faults.filter((f) => f.path.source.endsWith(`/${pod}$`)).reduce((n, f) => n + (f.times ?? 0), 0);
}

interface Deleted {
  readonly uid: string;
  readonly at: number;
}

const totals = { runs: 0, deletes: 0, failedDeletes: 0, restarts: 0, statuses: new Map<number, number>(), codes: new Map<string, number>(), fromRecord: 0 };
const count = <K>(map: Map<K, number>, key: K) => map.set(key, (map.get(key) ?? 0) + 1);

t.test('across replicas, restarts and retried failures: one DELETE per pod per cooldown, and never more than the budget in a minute', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(round, { minLength: 1, maxLength: 10 }), async (rounds) => {
      totals.runs++;
      const set = await startReplicas(undefined, {
        count: 3,
        policyYaml,
        terminatingPods: true,
        pods: pods.map((name) => makePod('default', name, `uid-${name}`)),
      });
      const { fake, clock, replicas } = set;
      const deleted: Deleted[] = [];
      // Each event is one alert: every delivery of it sends the same bytes.
      const events = new Map<string, Delivery>();
      const eventFor = (pod: string, n: number): Delivery => {
        const id = `${pod}-event-${n}`;
        if (!events.has(id)) events.set(id, alertAbout(id, pod, startMs - 1000));
        return events.get(id)!;
      };
      try {
        for (const { advance, restart, deliveries } of rounds) {
          clock.advance(advance);
          if (restart !== undefined) {
            await set.restart(restart);
            totals.restarts++;
          }
          const before = new Map(pods.map((p) => [p, pendingFaults(fake, p)]));
          const injected = new Map(pods.map((p) => [p, 0]));
          for (const d of deliveries.filter((d) => d.fault)) {
            const pod = pods[d.pod]!;
            fake.fail({ method: 'DELETE', path: new RegExp(`/pods/${pod}$`), status: 503 });
            injected.set(pod, injected.get(pod)! + 1);
          }
          const seen = fake.requests.length;
          const answers = await Promise.all(deliveries.map((d) => send(replicas[d.replica]!.drop, eventFor(pods[d.pod]!, d.event))));
          for (const res of answers) {
            count(totals.statuses, res.statusCode);
            if (![200, 202, 429, 503].includes(res.statusCode)) throw new Error(`unexpected answer ${res.statusCode}: ${res.body}`);
            if (res.statusCode >= 400) count(totals.codes, (JSON.parse(res.body) as { error: { code: string } }).error.code);
          }
          // The round's DELETEs, less those an injected 503 answered, happened at the round's time.
          const requests = fake.requests.slice(seen);
          for (const pod of pods) {
            const sent = requests.filter((r) => r.method === 'DELETE' && r.path === `/api/v1/namespaces/default/pods/${pod}`).length;
            const failed = before.get(pod)! + injected.get(pod)! - pendingFaults(fake, pod);
            totals.failedDeletes += failed;
            for (let k = 0; k < sent - failed; k++) deleted.push({ uid: `uid-${pod}`, at: clock.ms });
          }
        }
      } finally {
        await set.close();
      }
      totals.deletes += deleted.length;
      totals.fromRecord += set.instances.flatMap((drop) => drop.logs).filter((l) => 'fromRecord' in l && l.replayed === false).length;
      // What the apps say they did agrees with what the API server saw.
      const acted = set.instances.flatMap((drop) => drop.logs).filter((l) => l.decision === 'act' && l.outcome === 'done' && !('fromRecord' in l) && l.replayed === false);
      if (acted.length !== deleted.length) throw new Error(`the apps logged ${acted.length} responses that deleted, the API server carried out ${deleted.length} DELETEs`);
      for (const uid of new Set(deleted.map((d) => d.uid))) {
        const times = deleted.filter((d) => d.uid === uid).map((d) => d.at);
        for (let k = 1; k < times.length; k++) {
          const gap = (times[k]! - times[k - 1]!) / 1000;
          if (gap < cooldownSeconds) throw new Error(`${uid} deleted twice ${gap} s apart, within its ${cooldownSeconds} s cooldown (at ${times.map((ms) => (ms - startMs) / 1000).join(', ')} s)`);
        }
      }
      for (const { at } of deleted) {
        const inWindow = deleted.filter((d) => d.at >= at && d.at < at + 60_000).length;
        if (inWindow > perMinute) throw new Error(`${inWindow} DELETEs in the minute from ${(at - startMs) / 1000} s, more than the budget of ${perMinute}`);
      }
    }),
    { numRuns: 40 },
  );
  t.comment(
    `${totals.runs} runs: ${totals.deletes} DELETEs carried out, ${totals.failedDeletes} answered 503 by an injected fault, ${totals.restarts} restarts, ` +
      `${totals.fromRecord} answers from another instance's record; answers ${JSON.stringify(Object.fromEntries(totals.statuses))}, codes ${JSON.stringify(Object.fromEntries(totals.codes))}`,
  );
  t.ok(totals.deletes > 0, 'the runs deleted pods: the properties were not vacuous');
  t.ok(totals.failedDeletes > 0, 'some DELETEs failed and were retried');
});
