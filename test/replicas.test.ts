// Several drop replicas in one process (issue 8): app instances built as main.ts builds them,
// each with its own identity and its own API client, share one fake API server and one clock
// the test moves; Broker deliveries are spread across them at once. Where a test needs the
// deliveries to overlap, the replica that won the claim is held just before its pod DELETE
// (holdPodDeletes) until every other copy has been answered: no timer decides the interleaving.
import t from 'tap';
import { makePod, type FakeObject } from './helpers/fake-kube.ts';
import { alertAbout, bodyOf, holdPodDeletes, podDeletes, send, startReplicas, workWrites, type Delivery, type Replica } from './helpers/replicas.ts';
import type { TestApp } from './helpers/app.ts';

type Answer = Awaited<ReturnType<typeof send>>;

/** The claim Leases in the fake. */
function claims(leases: Map<string, FakeObject>): FakeObject[] {
  return [...leases.values()].filter((l) => l.metadata.name.startsWith('drop-claim-'));
}

/** Resolves with the answers of all but `pending` of `answers`, in the order they come. */
function allBut(answers: readonly Promise<Answer>[], pending: number): Promise<Answer[]> {
  const done: Answer[] = [];
  return new Promise((resolve) => {
    for (const answer of answers) {
      void answer.then((res) => {
        done.push(res);
        if (done.length === answers.length - pending) resolve([...done]);
      });
    }
  });
}

/** Sends each delivery to replica (k + offset) % n, all at once. */
function spread(replicas: readonly Replica[], deliveries: readonly Delivery[], offset = 0): Promise<Answer>[] {
  return deliveries.map((d, k) => send(replicas[(k + offset) % replicas.length]!.drop, d));
}

/** The log lines of the events the app decided (one per delivery answered). */
function decisions(drop: TestApp): Record<string, unknown>[] {
  return drop.logs.filter((l) => 'decision' in l || 'code' in l);
}

t.test('act once: copies of one event at every replica at the same moment, and again later, make one DELETE and one answer', async (t) => {
  const { fake, clock, replicas, start } = await startReplicas(t, { count: 3, pods: [makePod('default', 'web-1', 'uid-web-1')], terminatingPods: true });
  const holds = replicas.map((r) => holdPodDeletes(r.drop));
  const event = alertAbout('act-once-1', 'web-1', clock.ms - 1000);
  // Two copies at each replica, all sent at the same moment.
  const copies = [0, 1, 2, 0, 1, 2].map((i) => ({ i, answer: send(replicas[i]!.drop, event) }));
  const w = await Promise.race(holds.map((h, i) => h.reached.then(() => i)));
  const winner = `drop-${w}`;
  // The winner has its claim and its budget slot and holds its DELETE: every copy at the
  // other replicas is answered meanwhile, told the event is in progress (the Broker retries).
  const others = copies.filter((c) => c.i !== w);
  for (const res of await Promise.all(others.map((c) => c.answer))) {
    t.equal(res.statusCode, 503);
    t.equal(res.headers['retry-after'], '5', 'min(the working time left, 30 s; DROP_RETRY_AFTER_SECONDS, 5 s)');
    t.match(bodyOf(res).error, { code: 'DROP_IN_PROGRESS', details: { rule: 'terminal-shell', holder: winner } });
  }
  t.same(holds.map((h) => h.held()), [0, 1, 2].map((i) => (i === w ? 1 : 0)), 'only the winner came as far as a DELETE');
  // Every hold opens: a DELETE by any other replica from here on would show in the counts.
  for (const hold of holds) hold.release();
  const [first, second] = await Promise.all(copies.filter((c) => c.i === w).map((c) => c.answer));
  t.equal(first!.statusCode, 200);
  t.match(bodyOf(first!), { result: 'done', target: { pod: 'web-1', uid: 'uid-web-1' }, actions: [{ action: 'delete', status: 'done', reason: 'deleted pod default/web-1 (grace 1s)' }] });
  const sameAsFirst = (res: Answer, what: string) => {
    t.equal(res.statusCode, 200, `${what}: 200`);
    t.equal(res.headers['ce-id'], first!.headers['ce-id'], `${what}: the same reply id`);
    t.equal(res.body, first!.body, `${what}: the same reply body`);
  };
  sameAsFirst(second!, 'the other copy at the winner, which shared its response');

  // The Broker retries the 503s: each replica answers from the claim's record.
  const retried = await Promise.all(others.map((c) => send(replicas[c.i]!.drop, event)));
  retried.forEach((res, k) => sameAsFirst(res, `retry ${k + 1} of a 503`));
  for (const r of replicas.filter((_, i) => i !== w)) {
    t.match(decisions(r.drop).at(-1), { decision: 'act', fromRecord: [{ rule: 'terminal-shell', holder: winner }] }, `${r.identity} says it answered from the record`);
  }
  // Later, within the cooldown: a copy at every replica.
  clock.advance(10);
  (await Promise.all(replicas.map((r) => send(r.drop, event)))).forEach((res, i) => sameAsFirst(res, `a later copy at drop-${i}`));
  t.equal(podDeletes(fake).length, 1, 'one DELETE in all');
  t.equal(fake.events.length, 1, 'one Event on the pod');

  // Once the pod has left the API, a replica that never answered this event (a new one)
  // answers 202: a 2xx, which the Broker treats as the first outcome; nothing is acted on.
  fake.pods.delete('default/web-1');
  const fresh = await start('drop-3');
  const late = await send(fresh, event);
  t.equal(late.statusCode, 202);
  t.match(decisions(fresh).at(-1), { decision: 'skip', msg: 'skip: pod default/web-1 is already gone' });
  t.equal(podDeletes(fake).length, 1);
});

/**
 * Found while writing these tests (src is not changed here): a claim records its event only
 * for the rule's cooldown. Once it has expired, a copy of the SAME event at a replica that does
 * not remember it (another replica, or one restarted) takes the claim over as a new response
 * and acts again. Copies can come that late: the alert age limit (maxAlertAgeSeconds, 900 s)
 * is far above the cooldown (60 s). Run as a reproduction; the failing assertions are todo.
 */
const lateCopyBug =
  'src bug: past the cooldown the claim no longer answers for its event; a copy at a replica that does not remember it acts again';

t.test('act once past the cooldown: a copy at a replica that never saw the event is not acted on again (todo: a bug)', async (t) => {
  // A pod stuck terminating (say on a lost node): still readable after its DELETE.
  const { fake, clock, replicas } = await startReplicas(t, { count: 2, pods: [makePod('default', 'web-1', 'uid-web-1')], terminatingPods: true });
  const event = alertAbout('late-copy-1', 'web-1', clock.ms - 1000);
  const first = await send(replicas[0]!.drop, event);
  t.equal(first.statusCode, 200);
  clock.advance(61);
  const late = await send(replicas[1]!.drop, event);
  t.equal(late.statusCode, 200);
  t.equal(late.headers['ce-id'], first.headers['ce-id']);
  t.equal(podDeletes(fake).length, 1, 'one DELETE for one event');
  t.equal(fake.events.length, 1, 'one Event for one event');
});

t.test('cooldown across replicas: distinct alerts about one pod, spread at once, make one response per cooldown and per pod UID', async (t) => {
  const { fake, clock, replicas } = await startReplicas(t, { count: 3, pods: [makePod('default', 'web-1', 'uid-web-1')], terminatingPods: true });
  const t0 = clock.ms;
  const holds = replicas.map((r) => holdPodDeletes(r.drop));
  const flood = (tag: string, n: number, pod = 'web-1', fields: Record<string, string> = {}) =>
    Array.from({ length: n }, (_, k) => alertAbout(`${tag}-${k}`, pod, clock.ms - 1000, { fields }));
  const cooldownSkips = (from: number) =>
    replicas.flatMap((r) => decisions(r.drop).slice(from)).filter((l) => /^skip: cooldown: already responded to pod default\/web-1/.test(String(l.msg)));

  // Six alerts (six events) about web-1, two at each replica. While the winner holds its
  // DELETE, the five others are answered: 202, skipped by the claim's cooldown.
  const answers = spread(replicas, flood('first', 6));
  const w = await Promise.race(holds.map((h, i) => h.reached.then(() => i)));
  const skipped = await allBut(answers, 1);
  t.same(skipped.map((r) => r.statusCode), [202, 202, 202, 202, 202]);
  t.equal(cooldownSkips(0).length, 5, 'each says why: the cooldown');
  t.match(cooldownSkips(0)[0], { msg: /\(terminal-shell 60 s left\)$/ });
  for (const hold of holds) hold.release();
  t.same((await Promise.all(answers)).map((r) => r.statusCode).sort(), [200, 202, 202, 202, 202, 202]);
  t.equal(podDeletes(fake).length, 1, 'one DELETE');

  // 30 s later, another flood at every replica: still cooling down, on one shared clock.
  clock.advance(30);
  const logged = replicas.map((r) => decisions(r.drop).length);
  t.same((await Promise.all(spread(replicas, flood('second', 6), 1))).map((r) => r.statusCode), [202, 202, 202, 202, 202, 202]);
  const second = replicas.flatMap((r, i) => decisions(r.drop).slice(logged[i]));
  t.equal(second.length, 6);
  for (const line of second) t.match(line.msg, /^skip: cooldown: already responded to pod default\/web-1 \(terminal-shell 30 s left\)$/);
  t.equal(podDeletes(fake).length, 1);

  // Past the cooldown (web-1 is stuck terminating, still there): the next flood makes one more
  // response, whichever replicas remembered the cooldown; its delete sees the pod already
  // being deleted with the same grace period and does not send a second DELETE.
  clock.advance(31);
  const third = await Promise.all(spread(replicas, flood('third', 6), 2));
  t.same(third.map((r) => r.statusCode).sort(), [200, 202, 202, 202, 202, 202]);
  const response = JSON.parse(third.find((r) => r.statusCode === 200)!.body);
  t.match(response, { result: 'skipped', actions: [{ action: 'delete', status: 'skipped', reason: /already being deleted \(grace 1s/ }] });
  t.equal(podDeletes(fake).length, 1, 'no second DELETE of a pod already terminating');

  // A new pod takes the name (new UID, new container) while the old pod's cooldown runs: the
  // claim is per UID, so alerts from the new pod are acted on at once, once.
  const replacement = makePod('default', 'web-1', 'uid-web-1-new', 'a1b2c3d4e5f6');
  replacement.metadata.creationTimestamp = new Date(clock.ms - 5000).toISOString().replace(/\.\d+Z$/, 'Z');
  fake.addPod(replacement);
  clock.advance(1);
  t.same((await Promise.all(spread(replicas, flood('new-pod', 6, 'web-1', { 'container.id': 'a1b2c3d4e5f6' })))).map((r) => r.statusCode).sort(), [200, 202, 202, 202, 202, 202]);
  t.same(podDeletes(fake).map((r) => (r.body as { preconditions: { uid: string } }).preconditions.uid), ['uid-web-1', 'uid-web-1-new'], 'the new pod is deleted once, bound to its UID');
  t.equal(claims(fake.leases).length, 2, 'one claim per (rule, pod UID)');
  t.equal(clock.ms - t0, 62_000);
});

t.test('one destructive budget for every replica: 2 per minute holds across three replicas, and the 429s act when retried', async (t) => {
  const policyYaml = 'guards: {destructivePerMinute: 2}\nrules:\n  - name: kill\n    match: {}\n    actions: [{action: delete}]\n';
  const names = [1, 2, 3, 4, 5, 6].map((k) => `web-${k}`);
  const { fake, clock, replicas } = await startReplicas(t, { count: 3, policyYaml, pods: names.map((n) => makePod('default', n, `uid-${n}`)) });
  const alerts = names.map((n) => alertAbout(`budget-${n}`, n, clock.ms - 1000));
  const deletedPods = () => podDeletes(fake).map((r) => r.path.split('/').at(-1));

  const round = async (pending: readonly Delivery[], offset: number) => {
    const answers = await Promise.all(spread(replicas, pending, offset));
    const refused = pending.filter((_, k) => answers[k]!.statusCode === 429);
    for (const [k, res] of answers.entries()) {
      if (res.statusCode === 200) continue;
      t.equal(res.statusCode, 429, `${pending[k]!.pod}: 200 or 429`);
      t.equal(res.headers['retry-after'], '60', 'until the oldest slot frees');
      t.match(bodyOf(res).error, { code: 'DROP_BUDGET_EXCEEDED' });
    }
    const acted = pending.filter((_, k) => answers[k]!.statusCode === 200).map((d) => d.pod);
    return { acted, refused };
  };

  // Six alerts about six pods at once over three replicas: two act, four are refused.
  const first = await round(alerts, 0);
  t.equal(first.acted.length, 2);
  t.same(deletedPods().sort(), [...first.acted].sort(), 'exactly the two that acted were deleted');
  const budget = fake.leases.get('falco-drop/drop-budget')!;
  t.equal(JSON.parse(budget.metadata.annotations!['falco-drop/destructive-actions']!).length, 2, 'the shared budget holds two slots');
  for (const pod of first.refused.map((d) => d.pod)) t.ok(fake.pods.has(`default/${pod}`), `${pod} untouched`);
  t.equal(claims(fake.leases).length, 2, 'the refused ones gave their claims back');

  // A minute later the Broker's retries of the four, each at another replica: two more act.
  clock.advance(61);
  const second = await round(first.refused, 1);
  t.equal(second.acted.length, 2);
  t.equal(podDeletes(fake).length, 4);
  clock.advance(61);
  const third = await round(second.refused, 2);
  t.same([third.acted.length, third.refused.length], [2, 0]);
  t.same(deletedPods().sort(), [...names].sort(), 'every pod deleted once, two a minute');
  t.equal(fake.pods.size, 0);
});

t.test('a replica that dies holding a claim, before its DELETE: the event waits out the working time, then is resumed and acted on once', async (t) => {
  const { fake, clock, replicas, restart, crash } = await startReplicas(t, { count: 2, pods: [makePod('default', 'web-1', 'uid-web-1')] });
  const t0 = clock.ms;
  const a = replicas[0]!.drop;
  const hold = holdPodDeletes(a);
  const event = alertAbout('crash-1', 'web-1', clock.ms - 1000);
  const pending = send(a, event);
  await hold.reached;
  const seen = fake.requests.length;
  // drop-0 dies with its claim won and its budget slot taken, before its DELETE left.
  await crash(a);
  hold.release();
  await pending; // what it answered reaches no one
  t.equal(fake.requests.length, seen, 'nothing of drop-0 reached the API server after it died');
  t.ok(fake.pods.has('default/web-1'));
  const [claim] = claims(fake.leases);
  t.match(claim, { spec: { holderIdentity: 'drop-0' }, metadata: { annotations: { 'falco-drop/event-id': 'crash-1', 'falco-drop/working-until': new Date(t0 + 30_000).toISOString() } } });
  t.notOk('falco-drop/outcome' in claim!.metadata.annotations!, 'no outcome recorded');

  // drop-0 restarts (same identity, empty memory); the Broker retries at it and at drop-1.
  const restarted = await restart(0);
  for (const drop of [restarted, replicas[1]!.drop]) {
    const res = await send(drop, event);
    t.equal(res.statusCode, 503);
    t.equal(res.headers['retry-after'], '5');
    t.match(bodyOf(res).error, { code: 'DROP_IN_PROGRESS', details: { holder: 'drop-0', workingUntil: new Date(t0 + 30_000).toISOString() } });
  }
  clock.advance(29);
  const almost = await send(replicas[1]!.drop, event);
  t.equal(almost.statusCode, 503);
  t.equal(almost.headers['retry-after'], '1', 'one second of working time left');
  t.same(podDeletes(fake), [], 'no DELETE while the claim may still be worked on');

  clock.advance(1);
  const resumed = await send(restarted, event);
  t.equal(resumed.statusCode, 200, 'the working time is over: the restarted replica resumes the response');
  t.match(bodyOf(resumed), { result: 'done', actions: [{ action: 'delete', status: 'done' }] });
  t.equal(podDeletes(fake).length, 1, 'acted once');
  t.notOk(fake.pods.has('default/web-1'));
  await restarted.app.background.drain();
  t.match(claims(fake.leases)[0], { spec: { leaseTransitions: 1 }, metadata: { annotations: { 'falco-drop/outcome': /"status":"done"/ } } });
  // drop-1 retries too, after the pod has gone: a 2xx, and nothing more.
  const after = await send(replicas[1]!.drop, event);
  t.equal(after.statusCode, 202);
  t.equal(podDeletes(fake).length, 1);
});

t.test('a replica that dies right after its DELETE, before recording: the pod is gone, so nothing is acted on again', async (t) => {
  const { fake, clock, replicas, restart, crash } = await startReplicas(t, { count: 2, pods: [makePod('default', 'web-1', 'uid-web-1')] });
  const a = replicas[0]!.drop;
  // The DELETE is done by the API server; drop-0 dies before it reads the answer.
  const hold = holdPodDeletes(a, () => a.kube!.close());
  hold.release();
  const event = alertAbout('crash-2', 'web-1', clock.ms - 1000);
  await send(a, event);
  t.equal(podDeletes(fake).length, 1);
  t.notOk(fake.pods.has('default/web-1'), 'the pod is gone');
  t.equal(fake.requests.at(-1)!.method, 'DELETE', 'nothing of drop-0 reached the API server after its DELETE');
  t.notOk('falco-drop/outcome' in claims(fake.leases)[0]!.metadata.annotations!, 'no outcome recorded');
  await crash(a);

  const restarted = await restart(0);
  for (const advance of [0, 30]) {
    clock.advance(advance);
    for (const drop of [restarted, replicas[1]!.drop]) {
      const res = await send(drop, event);
      t.equal(res.statusCode, 202, `+${advance} s: a 2xx`);
      t.match(decisions(drop).at(-1), { msg: 'skip: pod default/web-1 is already gone' });
    }
  }
  t.equal(podDeletes(fake).length, 1, 'no second DELETE');
});

/**
 * Found while writing these tests (src is not changed here): a resumed response runs every
 * action again, and delete does not look at metadata.deletionTimestamp. A pod still
 * terminating when the claim's working time ends (30 s: stuck on a lost node, or a long grace
 * period) is deleted a second time, with a second budget slot and a second Event.
 */
const resumedDeleteGap = 'src gap: a resumed response deletes a pod that is already terminating a second time';

t.test('a replica that dies right after its DELETE, the pod still terminating: the resumed response does not delete it again (todo: a gap)', async (t) => {
  const { fake, clock, replicas, restart, crash } = await startReplicas(t, { count: 1, pods: [makePod('default', 'web-1', 'uid-web-1')], terminatingPods: true });
  const a = replicas[0]!.drop;
  holdPodDeletes(a, () => a.kube!.close()).release();
  const event = alertAbout('crash-3', 'web-1', clock.ms - 1000);
  await send(a, event);
  t.ok(fake.pods.get('default/web-1')!.metadata.deletionTimestamp, 'the pod is terminating');
  await crash(a);
  const restarted = await restart(0);
  clock.advance(30);
  const res = await send(restarted, event);
  t.ok(res.statusCode >= 200 && res.statusCode < 300, 'a 2xx');
  t.equal(podDeletes(fake).length, 1, 'no second DELETE');
});

t.test('a restart after a recorded response: the new instance answers a redelivery from the record, with no pod write', async (t) => {
  const { fake, replicas, restart } = await startReplicas(t, { count: 1, pods: [makePod('default', 'web-1', 'uid-web-1')], terminatingPods: true });
  const event = alertAbout('recorded-1', 'web-1', Date.parse('2025-06-12T09:21:07Z'));
  const first = await send(replicas[0]!.drop, event);
  t.equal(first.statusCode, 200);
  await replicas[0]!.drop.app.background.drain();
  const writes = workWrites(fake).length;
  t.equal(writes, 2, 'the DELETE and its Event');

  const restarted = await restart(0);
  const again = await send(restarted, event);
  t.equal(again.statusCode, 200);
  t.equal(again.headers['ce-id'], first.headers['ce-id'], 'the same reply id');
  t.equal(again.body, first.body, 'the same reply body');
  t.match(decisions(restarted).at(-1), { decision: 'act', replayed: false, fromRecord: [{ rule: 'terminal-shell', holder: 'drop-0' }] });
  t.equal(workWrites(fake).length, writes, 'no pod write, no Event');

  // Once the pod has left the API, the next instance answers 202 (already gone), still writing nothing.
  fake.pods.delete('default/web-1');
  const third = await restart(0);
  t.equal((await send(third, event)).statusCode, 202);
  t.equal(workWrites(fake).length, writes);
});

t.test('alerts no rule matches (and others decided before any read) cost no API call on any replica', async (t) => {
  const { fake, clock, replicas } = await startReplicas(t, { count: 3, pods: [makePod('default', 'web-1', 'uid-web-1')] });
  const fresh = clock.ms - 1000;
  const unmatched = Array.from({ length: 6 }, (_, k) => alertAbout(`other-rule-${k}`, 'web-1', fresh, { rule: 'Read sensitive file untrusted' }));
  const deliveries: Delivery[] = [
    ...unmatched,
    ...unmatched, // their copies
    alertAbout('protected-1', 'coredns-1', fresh, { fields: { 'k8s.ns.name': 'kube-system' } }),
    alertAbout('too-old-1', 'web-1', clock.ms - 901_000),
    { ...alertAbout('not-falco-1', 'web-1', fresh), headers: { ...alertAbout('not-falco-1', 'web-1', fresh).headers, 'ce-type': 'dev.knative.sources.ping' }, payload: '{"message":"hello"}' },
  ];
  const answers = await Promise.all(deliveries.flatMap((d) => replicas.map((r) => send(r.drop, d))));
  t.same(new Set(answers.map((r) => r.statusCode)), new Set([202]));
  t.same(fake.requests, [], 'not one API call, Leases included');
  for (const r of replicas) {
    const msgs = r.drop.logs.filter((l) => l.replayed !== true).map((l) => String(l.msg));
    t.equal(msgs.filter((m) => m.startsWith('skip: no response rule matches rule "Read sensitive file untrusted"')).length, 6, `${r.identity}: each unmatched event decided once`);
    t.ok(msgs.includes('skip: namespace kube-system is protected'));
    t.ok(msgs.some((m) => /^skip: the alert is 901 s old/.test(m)));
    t.ok(msgs.includes('ignored: a dev.knative.sources.ping event is not a Falco alert'));
  }
});
