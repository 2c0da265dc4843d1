import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import type { ActionOutcome } from '../../src/actions/action.ts';
import { clipText } from '../../src/clip.ts';
import { Cooldowns, DestructiveBudget } from '../../src/guards.ts';
import { createKubeClient } from '../../src/kube.ts';
import { parsePolicy, type ResponseRule } from '../../src/policy.ts';
import {
  claimEventRef,
  ClusterSafety,
  createSafety,
  MemorySafety,
  readRecorded,
  recordable,
  scheduleSweeps,
  sweepIntervalMs,
  type RuleClaim,
} from '../../src/safety.ts';
import { budgetAnnotation, budgetName } from '../../src/state/budget.ts';
import { claimAnnotations, claimName, ClaimStore, maxOutcomeBytes } from '../../src/state/claims.ts';
import { FakeKube } from '../helpers/fake-kube.ts';
import { ManualClock } from '../state/harness.ts';

const namespace = 'falco-drop';
const rule: ResponseRule = parsePolicy(
  'guards: {cooldownSeconds: 60}\nrules:\n  - name: kill-shells\n    match: {rules: ["Terminal shell in container"]}\n    actions: [{action: delete}]\n',
  'safety-policy.yaml',
).rules[0]!;
const pod = { namespace: 'shop', name: 'mysql-0', uid: '6f1c2d3e-0000-4000-8000-000000000001' };
const event = (id: string) => ({ source: 'https://falco.org', id });
const leaseKey = `${namespace}/${claimName(rule.name, pod.uid)}`;
const outcome = { outcomes: [{ action: 'delete', status: 'done', reason: 'deleted pod shop/mysql-0 (grace 1s)' }] as ActionOutcome[] };

function won(claim: RuleClaim): Extract<RuleClaim, { state: 'won' }> {
  if (claim.state !== 'won') throw new Error(`expected a won claim, got ${JSON.stringify(claim)}`);
  return claim;
}

/** Never aborted: the service is not stopping. */
const signal = new AbortController().signal;
const bytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

t.test('claimEventRef keeps short references and stores long ones as their sha256', async (t) => {
  const short = { source: 'https://falco.org', id: 'a'.repeat(253) };
  t.same(claimEventRef(short), short, 'up to 253 characters is kept as it is');
  const longId = 'i'.repeat(254);
  const longSource = `https://${'s'.repeat(500_000)}`;
  const ref = claimEventRef({ source: longSource, id: longId });
  t.equal(ref.id, `sha256:${createHash('sha256').update(longId).digest('hex')}`);
  t.equal(ref.source, `sha256:${createHash('sha256').update(longSource).digest('hex')}`);
  t.ok(ref.id.length <= 253 && ref.source.length <= 253, 'what is stored fits an annotation readably');
  t.same(claimEventRef({ source: longSource, id: longId }), ref, 'equal events give equal references');
  t.not(claimEventRef({ source: longSource, id: `${longId}x` }).id, ref.id, 'different events differ');
});

t.test('recordable', async (t) => {
  t.test('an outcome that fits is recorded as it is', async (t) => {
    t.same(recordable(outcome), outcome);
    const exact = { outcomes: [{ action: 'delete', status: 'done' as const, reason: 'r'.repeat(560) }] };
    t.same(recordable(exact), exact, 'a reason within 512 characters and its marker is not cut');
  });

  t.test('long reasons are cut to 512 characters when that fits', async (t) => {
    const long = { outcomes: [1, 2, 3].map((i) => ({ action: 'label', status: 'failed' as const, reason: `${i}`.repeat(2000) })) };
    t.ok(bytes(long) > maxOutcomeBytes);
    const cut = recordable(long);
    t.same(cut, { outcomes: long.outcomes.map((o) => ({ ...o, reason: clipText(o.reason, 512) })) });
    t.match(cut.outcomes[0]!.reason, /^1{512}…\[truncated: 2000 characters\]$/);
    t.ok(bytes(cut) <= maxOutcomeBytes);
  });

  t.test('then to 128 characters when 512 is still too long', async (t) => {
    const long = { outcomes: Array.from({ length: 10 }, (_, i) => ({ action: 'annotate', status: 'done' as const, reason: `${i}`.repeat(1000) })) };
    t.ok(bytes({ outcomes: long.outcomes.map((o) => ({ ...o, reason: clipText(o.reason, 512) })) }) > maxOutcomeBytes, '512 does not fit');
    const cut = recordable(long);
    t.same(cut, { outcomes: long.outcomes.map((o) => ({ ...o, reason: clipText(o.reason, 128) })) });
    t.ok(bytes(cut) <= maxOutcomeBytes);
  });

  t.test('too many actions: the first ones are kept, with a note saying how many were left out', async (t) => {
    const many = { outcomes: Array.from({ length: 200 }, (_, i) => ({ action: `a${i}-${'n'.repeat(100)}`, status: 'skipped' as const, reason: `${i} ${'x'.repeat(300)}` })) };
    const cut = recordable(many);
    const note = cut.outcomes.at(-1)!;
    const kept = cut.outcomes.slice(0, -1);
    t.ok(kept.length > 10 && kept.length < 200, `kept ${kept.length}`);
    t.same(kept, many.outcomes.slice(0, kept.length).map((o) => ({ action: clipText(o.action, 64), status: o.status, reason: clipText(o.reason, 64) })), 'the first ones, in order, cut to 64 characters');
    t.same(note, { action: 'record', status: 'skipped', reason: `${200 - kept.length} more outcomes were not recorded (a claim holds ${maxOutcomeBytes} bytes)` });
    t.ok(bytes(cut) <= maxOutcomeBytes, `${bytes(cut)} bytes fit a claim`);
    const next = many.outcomes[kept.length]!;
    const withNext = [...kept, { action: clipText(next.action, 64), status: next.status, reason: clipText(next.reason, 64) }];
    t.ok(bytes({ outcomes: withNext }) > maxOutcomeBytes - 200, 'as many as fit are kept');
  });

  t.test('when every outcome fits once cut to 64 characters, all are kept and no note is added', async (t) => {
    const long = { outcomes: Array.from({ length: 25 }, (_, i) => ({ action: 'label', status: 'done' as const, reason: `${i % 10}`.repeat(200) })) };
    t.ok(bytes({ outcomes: long.outcomes.map((o) => ({ ...o, reason: clipText(o.reason, 128) })) }) > maxOutcomeBytes, '128 does not fit');
    const cut = recordable(long);
    t.same(cut, { outcomes: long.outcomes.map((o) => ({ ...o, reason: clipText(o.reason, 64) })) });
  });

  t.test('whatever the outcomes, the result fits a claim and ClaimStore.record takes it', async (t) => {
    const worst = { outcomes: Array.from({ length: 50 }, () => ({ action: '\u0000'.repeat(5000), status: 'failed' as const, reason: '😀\u0001"'.repeat(5000) })) };
    const cut = recordable(worst);
    t.ok(bytes(cut) <= maxOutcomeBytes, `${bytes(cut)} bytes`);
    t.equal(cut.outcomes.at(-1)!.action, 'record');
  });
});

t.test('readRecorded', async (t) => {
  t.test('the shape this revision writes is read back as it is', async (t) => {
    const all = { outcomes: ['done', 'skipped', 'failed', 'dry-run'].map((status) => ({ action: 'delete', status, reason: `it was ${status}` })) };
    t.same(readRecorded(all, 'drop-a'), all);
    t.same(readRecorded(JSON.parse(JSON.stringify(recordable(outcome))), 'drop-a'), outcome, 'what recordable writes');
    t.same(readRecorded({ outcomes: [] }, 'drop-a'), { outcomes: [] });
  });

  t.test('anything else is one done outcome naming the holder', async (t) => {
    const others: unknown[] = [
      undefined,
      null,
      'text',
      42,
      {},
      { unreadable: '{not json' },
      { outcomes: 'delete' },
      { outcomes: [null] },
      { outcomes: [{ action: 1, status: 'done', reason: 'x' }] },
      { outcomes: [{ action: 'delete', status: 'exploded', reason: 'x' }] },
      { outcomes: [{ action: 'delete', status: 'done' }] },
      { outcomes: [{ action: 'delete', status: 'done', reason: 'ok' }, { action: 'delete', status: 'done', reason: 7 }] },
    ];
    for (const value of others) {
      t.same(
        readRecorded(value, 'drop-7f9c'),
        { outcomes: [{ action: 'record', status: 'done', reason: 'responded to by drop-7f9c; its record is not readable by this revision' }] },
        JSON.stringify(value) ?? 'undefined',
      );
    }
    t.same(readRecorded({ v: 2 }, ''), { outcomes: [{ action: 'record', status: 'done', reason: 'responded to by another replica; its record is not readable by this revision' }] }, 'no holder');
  });
});

/** A fake API server, and replicas of drop's ClusterSafety on it, each with its own client. */
async function cluster(t: Test, options: { perMinute?: number } = {}) {
  const fake = await new FakeKube().start();
  const clock = new ManualClock();
  const kubes: ReturnType<typeof createKubeClient>[] = [];
  t.teardown(async () => {
    for (const kube of kubes) kube.close();
    await fake.stop();
  });
  const replica = (identity: string) => {
    const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 });
    kubes.push(kube);
    const safety = createSafety({ kube, dryRun: false, namespace, identity, clock, retryAfterSeconds: 7, destructivePerMinute: options.perMinute ?? 3, maxAlertAgeSeconds: 900 });
    if (!(safety instanceof ClusterSafety)) throw new Error('a cluster that is acted on keeps its state in Leases');
    return safety;
  };
  return { fake, clock, replica };
}

t.test('ClusterSafety', async (t) => {
  t.test('won, then finish records the outcome; another event is then cooling from memory, the same event done', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const claim = won(await a.claim(rule, pod, event('e-1')));
    t.equal(claim.resumed, false);
    t.equal(claim.rule, rule);
    t.match(fake.leases.get(leaseKey), { spec: { holderIdentity: 'drop-a', leaseDurationSeconds: 60 } });
    t.equal(await claim.finish(outcome, signal), undefined, 'recorded');
    t.equal(fake.leases.get(leaseKey)?.metadata.annotations?.[claimAnnotations.outcome], JSON.stringify(outcome));

    clock.advance(10.5);
    const before = fake.requests.length;
    t.same(await a.claim(rule, pod, event('e-2')), { state: 'cooling', rule, remainingSeconds: 50 });
    t.same(await a.claim(rule, { ...pod, name: 'renamed' }, event('e-3')), { state: 'cooling', rule, remainingSeconds: 50 }, 'keyed by the pod UID');
    t.equal(fake.requests.length, before, 'answered from the cache: no API call');

    const again = await a.claim(rule, pod, event('e-1'));
    t.same(again, { state: 'done', rule, holder: 'drop-a', outcome });
    t.equal(fake.requests.length, before + 2, 'the same event is read from its claim (create 409, read)');

    t.equal((await a.claim({ ...rule, name: 'another-rule' }, pod, event('e-2'))).state, 'won', 'another rule on the pod has its own claim');

    clock.advance(50);
    const after = won(await a.claim(rule, pod, event('e-4')));
    t.equal(after.resumed, false, 'an expired claim is taken over once the cooldown is over');
    t.equal(fake.leases.get(leaseKey)?.metadata.annotations?.[claimAnnotations.eventId], 'e-4');
  });

  t.test('while one event claims a pod here, another event about it expects to lose: it takes no budget early', async (t) => {
    const { replica } = await cluster(t);
    const a = replica('drop-a');
    const first = a.claim(rule, pod, event('e-1'));
    const second = a.claim(rule, pod, event('e-1'));
    t.equal(a.expectsLoss(rule, pod, event('e-2')), true, 'another event is claiming the pod here');
    t.equal(a.expectsLoss(rule, pod, event('e-1')), false, 'not the event claiming it');
    t.equal(a.expectsLoss({ ...rule, name: 'another-rule' }, pod, event('e-2')), false, 'another rule has its own claim');
    won(await first);
    t.equal((await second).state, 'busy', 'the same event asked twice: the second finds the first in progress');
    t.equal(a.expectsLoss(rule, pod, event('e-2')), true, 'then drop-a holds the claim for e-1');
    t.equal(a.expectsLoss(rule, pod, event('e-1')), false);
  });

  t.test('a long event id is claimed by its sha256, and found again by it', async (t) => {
    const { fake, replica } = await cluster(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    const long = event(`partition:0/${'o'.repeat(600)}`);
    won(await a.claim(rule, pod, long));
    t.equal(fake.leases.get(leaseKey)?.metadata.annotations?.[claimAnnotations.eventId], claimEventRef(long).id);
    t.match(await b.claim(rule, pod, long), { state: 'busy', holder: 'drop-a' }, 'the same long event is the same event');
  });

  t.test('finish says why when the claim was taken over meanwhile, and nothing is remembered', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    const claim = won(await a.claim(rule, pod, event('e-1')));
    clock.advance(31);
    const resumed = won(await b.claim(rule, pod, event('e-1')));
    t.equal(resumed.resumed, true, 'drop-a stalled past its working time: drop-b resumes');
    t.equal(await claim.finish(outcome, signal), 'another replica took the claim over (it changed since this replica claimed it)');
    t.equal(fake.leases.get(leaseKey)?.metadata.annotations?.[claimAnnotations.outcome], undefined, 'nothing written over drop-b');
    t.match(await a.claim(rule, pod, event('e-2')), { state: 'cooling', remainingSeconds: 60 });
    const before = fake.requests.length;
    t.match(await a.claim(rule, pod, event('e-2')), { state: 'cooling' });
    t.ok(fake.requests.length > before, 'not answered from memory: the claim was never seen recorded');
  });

  t.test('finish tries again after a failure that may pass, and records', async (t) => {
    const { fake, replica } = await cluster(t);
    const a = replica('drop-a');
    const claim = won(await a.claim(rule, pod, event('e-1')));
    fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 500, times: 2 });
    t.equal(await claim.finish(outcome, signal), undefined, 'recorded at the third try');
    t.equal(fake.requests.filter((r) => r.method === 'PUT').length, 3);
    t.equal(fake.leases.get(leaseKey)?.metadata.annotations?.[claimAnnotations.outcome], JSON.stringify(outcome));
    t.equal(a.expectsLoss(rule, pod, event('e-2')), true, 'remembered: another event is known to be cooling');
  });

  t.test('finish says why when the API fails past the claim\'s working time, and nothing is remembered', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const claim = won(await a.claim(rule, pod, event('e-1')));
    // The first try is held at the API server while the working time runs out.
    fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 500, delayMs: 300 });
    const finished = claim.finish(outcome, signal);
    await fake.arrived('PUT', /\/leases\/drop-claim-/);
    clock.advance(30);
    t.match(await finished, /^record the outcome of claim falco-drop\/drop-claim-[0-9a-f]{40}: Kubernetes answered 500[^(]*$/, 'tried once: no time left for another');
    t.equal(fake.requests.filter((r) => r.method === 'PUT').length, 1);
    t.equal(a.expectsLoss(rule, pod, event('e-2')), false, 'a claim not recorded is not remembered');
  });

  t.test('finish does not try again a refusal that retrying cannot fix', async (t) => {
    const { fake, replica } = await cluster(t);
    const claim = won(await replica('drop-a').claim(rule, pod, event('e-1')));
    fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 500 });
    fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 403 });
    t.match(await claim.finish(outcome, signal), /Kubernetes answered 403.*\(tried 2 times\)$/, 'a 500, tried again, then a 403');
    t.equal(fake.requests.filter((r) => r.method === 'PUT').length, 2);
  });

  t.test('finish stops trying when the service stops, and says so', async (t) => {
    const { fake, replica } = await cluster(t);
    const a = replica('drop-a');
    const stop = new AbortController();
    const first = won(await a.claim(rule, pod, event('e-1')));
    fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 503, times: 2 });
    const finished = first.finish(outcome, stop.signal);
    await fake.arrived('PUT', /\/leases\/drop-claim-/);
    stop.abort();
    t.match(await finished, /answered 503.*\(stopped trying: the service is stopping\)$/);
    const second = won(await a.claim(rule, { ...pod, uid: 'another-pod' }, event('e-1')));
    t.match(await second.finish(outcome, stop.signal), /answered 503.*stopped trying: the service is stopping/, 'already stopped: one try');
  });

  t.test('finish turns anything thrown into text', async (t) => {
    const clock = new ManualClock();
    const claimed = { name: 'drop-claim-x', request: {}, lease: {} };
    const claims = {
      claim: async () => ({ won: true, claim: claimed, resumed: false }),
      record: async () => {
        throw 'a string, not an Error';
      },
    } as unknown as ClaimStore;
    const safety = new ClusterSafety({ claims, budget: undefined as never, clock, cacheMax: 1 });
    t.equal(safety.expectsLoss(rule, pod, event('e-1')), false, 'nothing known');
    t.equal(await won(await safety.claim(rule, pod, event('e-1'))).finish(outcome, signal), 'a string, not an Error');
  });

  t.test('release deletes the claim; a release that fails is left to expire', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    await won(await a.claim(rule, pod, event('e-1'))).release();
    t.notOk(fake.leases.has(leaseKey), 'released');
    t.match(fake.requests.at(-1), { method: 'DELETE', path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/${claimName(rule.name, pod.uid)}` });
    const claim = won(await b.claim(rule, pod, event('e-1')));
    fake.fail({ method: 'DELETE', path: /\/leases\/drop-claim-/, status: 500 });
    await claim.release();
    t.ok(fake.leases.has(leaseKey), 'still there');
    t.match(await a.claim(rule, pod, event('e-1')), { state: 'busy', holder: 'drop-b' }, 'held until its working time is over');
    clock.advance(30);
    t.match(won(await a.claim(rule, pod, event('e-1'))), { resumed: true }, 'then taken over');
  });

  t.test('lost to another event in progress: cooling, not remembered, so a release lets the next claim win', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    const held = won(await b.claim(rule, pod, event('e-b')));
    t.equal(b.expectsLoss(rule, pod, event('e-a')), true, 'drop-b knows it holds the claim for another event');
    t.equal(b.expectsLoss(rule, pod, event('e-b')), false, 'not for the same event');
    t.equal(a.expectsLoss(rule, pod, event('e-a')), false, 'drop-a does not know before it asks');
    clock.advance(0.2);
    t.same(await a.claim(rule, pod, event('e-a')), { state: 'cooling', rule, remainingSeconds: 60 });
    t.equal(a.expectsLoss(rule, pod, event('e-c')), false, 'a claim in progress is not remembered');
    await held.release();
    t.equal(b.expectsLoss(rule, pod, event('e-a')), false, 'given back: no longer held');
    const before = fake.requests.length;
    t.equal((await a.claim(rule, pod, event('e-a'))).state, 'won');
    t.equal(fake.requests.length, before + 1, 'asked the API (one create)');
  });

  t.test('lost to another event recorded: cooling, remembered until it expires', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    await won(await b.claim(rule, pod, event('e-b'))).finish(outcome, signal);
    clock.advance(59.5);
    t.same(await a.claim(rule, pod, event('e-a')), { state: 'cooling', rule, remainingSeconds: 1 });
    const before = fake.requests.length;
    t.same(await a.claim(rule, pod, event('e-c')), { state: 'cooling', rule, remainingSeconds: 1 }, 'from memory');
    t.equal(fake.requests.length, before);
    t.same(await a.claim(rule, pod, event('e-b')), { state: 'done', rule, holder: 'drop-b', outcome }, 'the event remembered is still asked about');
    clock.advance(0.5);
    t.equal((await a.claim(rule, pod, event('e-a'))).state, 'won', 'expired: claimed again');
  });

  t.test('the same event in progress elsewhere is busy until its working time', async (t) => {
    const { clock, replica } = await cluster(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    won(await b.claim(rule, pod, event('e-1')));
    const start = clock.ms;
    clock.advance(3);
    t.same(await a.claim(rule, pod, event('e-1')), { state: 'busy', rule, holder: 'drop-b', until: new Date(start + 30_000) });
  });

  t.test('a recorded claim drop cannot read is done, naming its holder', async (t) => {
    const { fake, replica } = await cluster(t);
    const a = replica('drop-a');
    won(await a.claim(rule, pod, event('e-1')));
    fake.leases.get(leaseKey)!.metadata.annotations![claimAnnotations.outcome] = '{"v":9,"what":"a newer format"}';
    t.same(await a.claim(rule, pod, event('e-1')), {
      state: 'done',
      rule,
      holder: 'drop-a',
      outcome: { outcomes: [{ action: 'record', status: 'done', reason: 'responded to by drop-a; its record is not readable by this revision' }] },
    });
  });

  t.test('take is the budget in the drop-budget Lease', async (t) => {
    const { fake, clock, replica } = await cluster(t, { perMinute: 2 });
    const a = replica('drop-a');
    const b = replica('drop-b');
    const granted = await a.take(2);
    t.equal(granted.ok, true);
    t.equal(fake.leases.get(`${namespace}/${budgetName}`)?.metadata.annotations?.[budgetAnnotation], JSON.stringify([clock.ms, clock.ms]));
    clock.advance(15);
    t.same(await b.take(1), { ok: false, retryAfterSeconds: 45 }, 'spent for every replica');
    if (granted.ok) await granted.giveBack(1);
    t.equal((await b.take(1)).ok, true, 'a slot given back is free');
  });

  t.test('a burst of takes at one replica: each granted, none lost to the replica itself, one failure stops none', async (t) => {
    const { fake, replica } = await cluster(t, { perMinute: 600 });
    const a = replica('drop-a');
    fake.fail({ method: 'GET', path: new RegExp(`/leases/${budgetName}$`), status: 503 });
    const answers = await Promise.allSettled(Array.from({ length: 30 }, () => a.take(1)));
    t.match(answers[0], { status: 'rejected', reason: { code: 'DROP_K8S_UNAVAILABLE' } }, 'the first met the API failure');
    t.same(answers.slice(1).map((x) => x.status === 'fulfilled' && x.value.ok), Array(29).fill(true), 'every other one was granted');
    t.equal(JSON.parse(fake.leases.get(`${namespace}/${budgetName}`)!.metadata.annotations![budgetAnnotation]!).length, 29);
    const writes = fake.requests.filter((r) => r.path.endsWith(`/${budgetName}`) || (r.method === 'POST' && r.path.endsWith('/leases')));
    t.equal(writes.filter((r) => r.method !== 'GET').length, 29, 'one write per take: no compare-and-swap lost, no retry');
  });

  t.test('sweep deletes the claims once past both their cooldown and the alert age limit', async (t) => {
    const { fake, clock, replica } = await cluster(t);
    const a = replica('drop-a');
    won(await a.claim(rule, pod, event('e-1')));
    won(await a.claim({ ...rule, name: 'long', cooldownSeconds: 1000 }, pod, event('e-1')));
    clock.advance(60);
    t.equal(await a.sweep(), 0, 'past the cooldown, a claim is kept while a copy of its alert could still come');
    clock.advance(840);
    t.equal(await a.sweep(), 1, 'at 900 s (maxAlertAgeSeconds) it goes');
    t.same([...fake.leases.keys()], [`${namespace}/${claimName('long', pod.uid)}`], 'a longer cooldown keeps its claim');
    clock.advance(100);
    t.equal(await a.sweep(), 1);
    t.equal(fake.leases.size, 0);
  });
});

t.test('createSafety keeps the state in memory without a cluster or under the global dry-run, else in Leases', async (t) => {
  const clock = new ManualClock();
  const wiring = { namespace: 'drop-ns', identity: 'drop-xyz', clock, retryAfterSeconds: 5, destructivePerMinute: 1, maxAlertAgeSeconds: 900 };
  const none = createSafety({ ...wiring, kube: undefined, dryRun: false });
  t.ok(none instanceof MemorySafety);
  t.equal(none.home, 'memory');
  const fake = await new FakeKube().start();
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 });
  t.teardown(async () => {
    kube.close();
    await fake.stop();
  });
  const dry = createSafety({ ...wiring, kube, dryRun: true });
  t.ok(dry instanceof MemorySafety);
  t.equal((await dry.claim(rule, pod, event('e-1'))).state, 'won');
  t.equal((await dry.take(1)).ok, true);
  t.same(await dry.take(1), { ok: false, retryAfterSeconds: 60 }, 'destructivePerMinute is its budget');
  t.same(fake.requests, [], 'the global dry-run writes nothing, claims included');

  const live = createSafety({ ...wiring, kube, dryRun: false });
  t.ok(live instanceof ClusterSafety);
  t.equal(live.home, 'cluster');
  won(await live.claim(rule, pod, event('e-1')));
  t.match(fake.leases.get(`drop-ns/${claimName(rule.name, pod.uid)}`), { spec: { holderIdentity: 'drop-xyz' } }, 'in its namespace, held by its identity');
  t.equal((await live.take(1)).ok, true);
  t.same(await live.take(1), { ok: false, retryAfterSeconds: 60 });
  t.ok(fake.leases.has(`drop-ns/${budgetName}`));
});

t.test('MemorySafety', async (t) => {
  const clock = new ManualClock();
  const safety = new MemorySafety(new Cooldowns(clock), new DestructiveBudget(clock, 2));
  t.equal(safety.home, 'memory');
  t.equal(safety.expectsLoss(rule, pod), false);
  const first = won(await safety.claim(rule, pod));
  t.equal(first.resumed, false);
  t.equal(safety.expectsLoss(rule, pod), true, 'cooling');
  t.equal(await first.finish(outcome, signal), undefined);
  clock.advance(20);
  t.same(await safety.claim(rule, pod), { state: 'cooling', rule, remainingSeconds: 40 });
  t.equal((await safety.claim({ ...rule, name: 'other' }, pod)).state, 'won', 'per rule');
  t.equal((await safety.claim(rule, { ...pod, uid: 'another-pod' })).state, 'won', 'per pod');
  await first.release();
  const again = await safety.claim(rule, pod);
  t.equal(again.state, 'won', 'a release cancels the cooldown');
  await won(again).finish(outcome, signal);
  t.equal((await safety.claim(rule, pod)).state, 'cooling');

  const grant = await safety.take(2);
  if (!grant.ok) throw new Error('two slots are free');
  clock.advance(10);
  t.same(await safety.take(1), { ok: false, retryAfterSeconds: 50 });
  await grant.giveBack(1);
  t.equal((await safety.take(1)).ok, true, 'a slot given back is free');
  t.equal((await safety.take(1)).ok, false);
});

/** A ClusterSafety as scheduleSweeps sees it: a sweep() the test answers. */
function fakeSweeper(answers: (() => Promise<number>)[]) {
  const calls: number[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  const safety = {
    sweep: () => {
      calls.push(Date.now());
      for (const w of waiting.filter((w) => w.n <= calls.length)) w.resolve();
      const answer = answers[calls.length - 1] ?? (() => Promise.resolve(0));
      return answer();
    },
  } as unknown as ClusterSafety;
  // The sweeps' timers are unref'd: something must keep the process alive while the test waits.
  const called = async (n: number) => {
    const alive = setInterval(() => {}, 1000);
    await new Promise<void>((resolve) => (calls.length >= n ? resolve() : waiting.push({ n, resolve })));
    clearInterval(alive);
  };
  return { safety, calls, called };
}

function fakeLog() {
  const lines: { level: 'info' | 'warn'; fields: Record<string, unknown>; msg: string }[] = [];
  const log = {
    info: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'info', fields, msg }),
    warn: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'warn', fields, msg }),
  } as unknown as Parameters<typeof scheduleSweeps>[1];
  return { log, lines };
}

/** Records the timers the sweeps set (src/state/common.ts: their delays), passing every call through as it is. */
function spyTimers(t: Test) {
  const original = globalThis.setTimeout;
  const delays: number[] = [];
  const timers: NodeJS.Timeout[] = [];
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    const timer = original(...args);
    if (/src\/state\/common\.ts/.test(new Error().stack ?? '')) {
      delays.push(args[1] as number);
      timers.push(timer);
    }
    return timer;
  }) as typeof setTimeout;
  const restore = () => {
    globalThis.setTimeout = original;
  };
  t.teardown(restore);
  return { delays, timers, restore };
}

t.test('scheduleSweeps', async (t) => {
  t.test('logs what it deleted, nothing when nothing, a warning when a sweep fails, and keeps going', async (t) => {
    const failure = new Error('list the claims in falco-drop: Kubernetes answered 503');
    const { safety, calls, called } = fakeSweeper([async () => 3, async () => 0, async () => Promise.reject(failure), async () => 1]);
    const { log, lines } = fakeLog();
    const timers = spyTimers(t);
    const stop = scheduleSweeps(safety, log, 4, () => 0.5);
    await called(5);
    stop();
    timers.restore();
    t.same(timers.delays, [5, 5, 5, 5, 5], 'everyMs plus the jitter (half of random() times everyMs)');
    t.ok(timers.timers.every((timer) => !timer.hasRef()), 'a sweep never keeps the process alive');
    t.same(lines, [
      { level: 'info', fields: { deleted: 3 }, msg: 'deleted 3 expired claims' },
      { level: 'warn', fields: { err: failure }, msg: 'could not delete the expired claims; trying again later' },
      { level: 'info', fields: { deleted: 1 }, msg: 'deleted 1 expired claims' },
    ]);
    t.equal(calls.length, 5);
  });

  t.test('stop() during a sweep: no sweep after it', async (t) => {
    let finish!: (n: number) => void;
    const { safety, calls, called } = fakeSweeper([() => new Promise<number>((resolve) => (finish = resolve))]);
    const { log, lines } = fakeLog();
    const stop = scheduleSweeps(safety, log, 1, () => 0);
    await called(1);
    stop();
    finish(2);
    // Long enough for several more sweeps at 1 ms each, were any scheduled.
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.equal(calls.length, 1);
    t.same(lines, [{ level: 'info', fields: { deleted: 2 }, msg: 'deleted 2 expired claims' }], 'the sweep under way finishes');
  });

  t.test('stop() between sweeps: the next one never runs', async (t) => {
    const { safety, calls } = fakeSweeper([]);
    const { log } = fakeLog();
    const stop = scheduleSweeps(safety, log, 1, () => 0);
    stop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.equal(calls.length, 0);
  });

  t.test('by default every 60 to 90 s', async (t) => {
    t.equal(sweepIntervalMs, 60_000);
    const timers = spyTimers(t);
    const { safety, calls } = fakeSweeper([]);
    const stop = scheduleSweeps(safety, fakeLog().log);
    timers.restore();
    stop();
    t.equal(timers.delays.length, 1);
    t.ok(timers.delays[0]! >= 60_000 && timers.delays[0]! < 90_000, `${timers.delays[0]} ms`);
    t.equal(timers.timers[0]?.hasRef(), false);
    t.equal(calls.length, 0);
  });
});
