import t from 'tap';
import { DropError } from '../../src/errors.ts';
import { createKubeClient } from '../../src/kube.ts';
import { ClaimStore, claimName, maxOutcomeBytes } from '../../src/state/claims.ts';
import { statePermissions } from '../../src/state/permissions.ts';
import { statusBody } from '../helpers/fake-kube.ts';
import { leasesPath, namespace, request, setup } from './harness.ts';

const micro = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
const name = claimName(request().rule, request().pod.uid);
const leasePath = `${leasesPath}/${name}`;

t.test('the claim name is fixed-length, valid for any rule, and differs per rule and per pod', async (t) => {
  t.match(name, /^drop-claim-[0-9a-f]{40}$/);
  t.not(claimName('other rule', request().pod.uid), name);
  t.not(claimName(request().rule, 'another-uid'), name);
  t.match(claimName('Ünïcode rule / with spaces\u0000and NUL'.repeat(500), request().pod.uid), /^drop-claim-[0-9a-f]{40}$/, 'any rule name gives a valid Lease name');
});

t.test('two replicas claim one (rule, pod) at once: exactly one wins, the other reads who and for which event', async (t) => {
  const { fake, clock, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const [ra, rb] = await Promise.all([
    a.claims.claim(request({ event: { source: 'falco.org/falcosidekick', id: 'e-a' } })),
    b.claims.claim(request({ event: { source: 'falco.org/falcosidekick', id: 'e-b' } })),
  ]);
  t.equal([ra, rb].filter((r) => r.won).length, 1, 'one winner');
  const winner = ra.won ? a : b;
  const [won, lost] = ra.won ? [ra, rb] : [rb, ra];
  if (!won.won || lost.won) throw new Error('unreachable');
  t.equal(won.resumed, false);
  t.same(lost.record, {
    sameEvent: false,
    event: { source: 'falco.org/falcosidekick', id: winner === a ? 'e-a' : 'e-b' },
    holder: winner.identity,
    claimedAt: clock.now(),
    expiresAt: new Date(clock.ms + 60_000),
    workingUntil: new Date(clock.ms + 30_000),
  });
  const creates = fake.requests.filter((r) => r.method === 'POST' && r.path === leasesPath);
  t.equal(creates.length, 2, 'each replica tried one create');
  t.match(creates[0]!.body, {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace,
      labels: { 'app.kubernetes.io/managed-by': 'falco-drop', 'falco-drop/state': 'claim' },
      annotations: {
        'falco-drop/rule': 'terminate shells in prod',
        'falco-drop/pod-namespace': 'shop',
        'falco-drop/pod-name': 'mysql-0',
        'falco-drop/pod-uid': request().pod.uid,
        'falco-drop/event-source': 'falco.org/falcosidekick',
        'falco-drop/event-id': /^e-[ab]$/,
        'falco-drop/working-until': '2026-11-26T08:00:30.000Z',
      },
    },
    spec: { holderIdentity: /^drop-[ab]$/, acquireTime: '2026-11-26T08:00:00.000000Z', renewTime: micro, leaseDurationSeconds: 60, leaseTransitions: 0 },
  });
  t.equal(fake.leases.size, 1);
  t.equal(fake.requests.filter((r) => r.method === 'GET').length, 1, 'the loser read the claim once');
});

t.test('after record(), the loser and a redelivery of the same event to the other replica get the outcome', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const first = await a.claims.claim(request());
  if (!first.won) throw new Error('a should win an empty store');
  const outcome = { status: 200, actions: [{ action: 'delete', result: 'done' }] };
  const recorded = await a.claims.record(first.claim, outcome);
  t.equal(recorded.recorded, true);
  const put = fake.requests.find((r) => r.method === 'PUT')!;
  t.equal(put.path, leasePath);
  t.match(put.body, { metadata: { resourceVersion: first.claim.lease.metadata!.resourceVersion, annotations: { 'falco-drop/outcome': JSON.stringify(outcome), 'falco-drop/event-id': 'e-1' } } });
  const other = await b.claims.claim(request({ event: { source: 'falco.org/falcosidekick', id: 'e-2' } }));
  t.match(other, { won: false, record: { sameEvent: false, event: { id: 'e-1' }, holder: 'drop-a', outcome } });
  t.notOk('workingUntil' in (other as { record: object }).record, 'a finished claim is not in progress');
  const again = await b.claims.claim(request());
  t.match(again, { won: false, record: { sameEvent: true, outcome } });
  const mine = await a.claims.claim(request());
  t.match(mine, { won: false, record: { sameEvent: true, holder: 'drop-a', outcome } }, 'the holder itself answers a redelivery from the record');
});

t.test('the same event redelivered while its response is in progress is told so, not acted on twice', async (t) => {
  const { clock, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  await a.claims.claim(request());
  clock.advance(29);
  const during = await b.claims.claim(request());
  t.match(during, { won: false, record: { sameEvent: true, holder: 'drop-a', workingUntil: new Date(clock.ms + 1000) } });
});

t.test('an expired claim is taken over by an update with the version read: a new response, not a resumed one', async (t) => {
  const { fake, clock, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const first = await a.claims.claim(request());
  if (!first.won) throw new Error('a should win');
  await a.claims.record(first.claim, { status: 200 });
  clock.advance(59.999);
  t.match(await b.claims.claim(request({ event: { source: 's', id: 'e-2' } })), { won: false }, 'still cooling down 1 ms before the end');
  clock.advance(0.001);
  const stored = fake.leases.get(`${namespace}/${name}`)!;
  const taken = await b.claims.claim(request({ event: { source: 's', id: 'e-2' } }));
  t.match(taken, { won: true, resumed: false, previous: { holder: 'drop-a', outcome: { status: 200 } } });
  const put = fake.requests.filter((r) => r.method === 'PUT').at(-1)!;
  t.match(put.body, {
    metadata: { resourceVersion: stored.metadata.resourceVersion, annotations: { 'falco-drop/event-id': 'e-2', 'falco-drop/working-until': '2026-11-26T08:01:30.000Z' } },
    spec: { holderIdentity: 'drop-b', acquireTime: '2026-11-26T08:01:00.000000Z', leaseTransitions: 1 },
  });
  t.notOk('falco-drop/outcome' in ((put.body as { metadata: { annotations: object } }).metadata.annotations), 'the old outcome is not carried over');
});

t.test('an in-progress claim past working-until with no outcome is resumed by another replica', async (t) => {
  const { clock, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const first = await a.claims.claim(request());
  if (!first.won) throw new Error('a should win');
  clock.advance(30);
  const resumed = await b.claims.claim(request());
  t.match(resumed, { won: true, resumed: true, previous: { holder: 'drop-a', sameEvent: true, workingUntil: new Date(clock.ms) } });
  // The crashed holder comes back: its record and release find the claim taken over.
  t.same(await a.claims.record(first.claim, { status: 200 }), { recorded: false, reason: 'another replica took the claim over (it changed since this replica claimed it)' });
  t.equal(await a.claims.release(first.claim), false);
  if (!resumed.won) throw new Error('unreachable');
  t.match(await b.claims.record(resumed.claim, { status: 200 }), { recorded: true, claim: { name } });
});

t.test('record() after the claim expired and was swept writes it back expired (a Lease update creates a missing one): the next claim takes it over', async (t) => {
  const { fake, clock, replica } = await setup(t);
  const a = replica('drop-a');
  const won = await a.claims.claim(request({ cooldownSeconds: 10 }));
  if (!won.won) throw new Error('a should win');
  clock.advance(20);
  t.equal(await a.claims.sweep(clock.now()), 1);
  t.match(await a.claims.record(won.claim, { status: 200 }), { recorded: true });
  t.match(await replica('drop-b').claims.claim(request({ event: { source: 's', id: 'e-2' } })), { won: true, resumed: false, previous: { holder: 'drop-a', outcome: { status: 200 } } });
});

t.test('release() deletes only the version held, so the Broker\'s retry wins the next claim', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const first = await a.claims.claim(request());
  if (!first.won) throw new Error('a should win');
  t.equal(await a.claims.release(first.claim), true);
  t.match(fake.requests.at(-1), {
    method: 'DELETE',
    path: leasePath,
    body: { preconditions: { resourceVersion: first.claim.lease.metadata!.resourceVersion, uid: first.claim.lease.metadata!.uid } },
  });
  t.equal(fake.leases.size, 0);
  t.match(await b.claims.claim(request()), { won: true, resumed: false });
  t.equal(await a.claims.release(first.claim), false, 'releasing again deletes nothing of the new holder');
  t.equal(fake.leases.size, 1);
  fake.leases.clear();
  t.equal(await a.claims.release(first.claim), false, 'a claim already gone is released');
});

t.test('sweep() deletes the expired claims only, each at the version read; races with it are ignored', async (t) => {
  const { fake, clock, replica } = await setup(t);
  const a = replica('drop-a');
  await a.claims.claim(request({ rule: 'short', cooldownSeconds: 10 }));
  await a.claims.claim(request({ rule: 'short too', cooldownSeconds: 10 }));
  await a.claims.claim(request({ rule: 'gone meanwhile', cooldownSeconds: 10 }));
  await a.claims.claim(request({ rule: 'long', cooldownSeconds: 600 }));
  await a.budget.take(1);
  fake.leases.set(`${namespace}/someone-else`, { metadata: { name: 'someone-else', namespace, labels: {} }, spec: { renewTime: '2020-01-01T00:00:00.000000Z', leaseDurationSeconds: 1 } });
  clock.advance(10);
  // One is renewed by a takeover between the list and the delete (409), one deleted (404).
  fake.fail({ method: 'DELETE', path: new RegExp(claimName('short too', request().pod.uid)), status: 409, body: statusBody(409, 'Precondition failed') });
  fake.fail({ method: 'DELETE', path: new RegExp(claimName('gone meanwhile', request().pod.uid)), status: 404 });
  t.equal(await a.claims.sweep(clock.now()), 1);
  const list = fake.requests.find((r) => r.method === 'GET' && r.path === leasesPath)!;
  t.same(list.query, { labelSelector: 'app.kubernetes.io/managed-by=falco-drop,falco-drop/state=claim' });
  const deletes = fake.requests.filter((r) => r.method === 'DELETE');
  t.equal(deletes.length, 3, 'only the three expired claims were asked to go');
  t.match(deletes[0]!.body, { preconditions: { resourceVersion: /^\d+$/, uid: /^0000/ } });
  t.same([...fake.leases.keys()].sort(), [`${namespace}/${claimName('gone meanwhile', request().pod.uid)}`, `${namespace}/${claimName('long', request().pod.uid)}`, `${namespace}/${claimName('short too', request().pod.uid)}`, `${namespace}/drop-budget`, `${namespace}/someone-else`].sort());
});

t.test('a lost race is re-read and decided again; a storm of them ends in a retryable error', async (t) => {
  t.test('a create refused and the claim gone when read: create again', async (t) => {
    const { fake, replica } = await setup(t);
    const a = replica('drop-a');
    fake.fail({ method: 'POST', path: /leases$/, status: 409, body: statusBody(409, 'already exists', undefined, 'AlreadyExists'), times: 2 });
    t.match(await a.claims.claim(request()), { won: true });
    t.same(fake.requests.map((r) => r.method), ['POST', 'GET', 'POST', 'GET', 'POST']);
  });
  t.test('a takeover beaten by another replica: read again and answer from its claim', async (t) => {
    const { fake, clock, replica } = await setup(t);
    const a = replica('drop-a');
    const b = replica('drop-b');
    const c = replica('drop-c');
    await a.claims.claim(request());
    clock.advance(60);
    // The first takeover to arrive is refused 409 Conflict, as when another replica updated
    // first; that replica reads again and finds the other's live claim.
    fake.fail({ method: 'PUT', path: new RegExp(name), status: 409, body: statusBody(409, 'the object has been modified', undefined, 'Conflict') });
    const [rb, rc] = await Promise.all([b.claims.claim(request({ event: { source: 's', id: 'e-b' } })), c.claims.claim(request({ event: { source: 's', id: 'e-c' } }))]);
    t.equal([rb, rc].filter((r) => r.won).length, 1, 'one takeover won');
    const lost = rb.won ? rc : rb;
    t.match(lost, { won: false, record: { sameEvent: false, holder: rb.won ? 'drop-b' : 'drop-c' } });
    t.equal(fake.requests.filter((r) => r.method === 'PUT').length, 2, 'each tried one takeover');
  });
  t.test('conflicts every time: 503 with Retry-After, after the bounded attempts', async (t) => {
    const { fake, replica } = await setup(t, { attempts: 3 });
    const a = replica('drop-a');
    fake.fail({ method: 'POST', path: /leases$/, status: 409, body: statusBody(409, 'already exists', undefined, 'AlreadyExists'), times: 10 });
    const error = await a.claims.claim(request()).catch((e: unknown) => e);
    t.match(error, { name: 'DropError', code: 'DROP_K8S_UNAVAILABLE', status: 503, retryAfterSeconds: 7, message: /another replica changed it 3 times in a row/ });
    t.equal(fake.requests.filter((r) => r.method === 'POST').length, 3);
  });
});

t.test('an API that is down, throttles or refuses makes the same DropErrors as actions', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  fake.fail({ method: 'POST', path: /leases$/, status: 503 });
  t.match(await a.claims.claim(request()).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE', retryable: true, retryAfterSeconds: 7, message: /^claim terminate shells in prod for pod shop\/mysql-0 \(Lease falco-drop\/drop-claim-[0-9a-f]{40}\): Kubernetes answered 503/ });
  fake.fail({ method: 'POST', path: /leases$/, status: 403, body: statusBody(403, 'leases.coordination.k8s.io is forbidden: User "system:serviceaccount:falco-drop:drop" cannot create resource "leases"') });
  t.match(await a.claims.claim(request()).catch((e: unknown) => e), { code: 'DROP_K8S_REJECTED', retryable: false, message: /cannot create resource "leases"/ });
  fake.fail({ method: 'POST', path: /leases$/, status: 409, body: statusBody(409, 'exists', undefined, 'AlreadyExists') });
  fake.fail({ method: 'GET', path: /leases\//, status: 429, headers: { 'retry-after': '3' } });
  t.match(await a.claims.claim(request()).catch((e: unknown) => e), { code: 'DROP_K8S_THROTTLED', retryAfterSeconds: 3 });
  const won = await a.claims.claim(request());
  if (!won.won) throw new Error('a should win');
  fake.fail({ method: 'PUT', path: /leases\//, status: 500 });
  t.match(await a.claims.record(won.claim, {}).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE' });
  fake.fail({ method: 'DELETE', path: /leases\//, status: 500 });
  t.match(await a.claims.release(won.claim).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE' });
  fake.fail({ method: 'GET', path: /leases$/, status: 500 });
  t.match(await a.claims.sweep(new Date()).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE', message: /^list the claims in falco-drop/ });
  fake.fail({ method: 'DELETE', path: /leases\//, status: 500 });
  t.match(await a.claims.sweep(new Date(Date.UTC(2030, 0))).catch((e: unknown) => e), { code: 'DROP_K8S_UNAVAILABLE', message: /^delete expired claim/ });

  const down = replica('drop-down', 'http://127.0.0.1:1');
  const error = await down.claims.claim(request()).catch((e: unknown) => e);
  t.ok(error instanceof DropError);
  t.match(error, { code: 'DROP_K8S_UNAVAILABLE', retryable: true, message: /Kubernetes API unreachable/ });
});

t.test('record() refuses an outcome that is no JSON or too large, before any call', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  const won = await a.claims.claim(request());
  if (!won.won) throw new Error('a should win');
  const before = fake.requests.length;
  await t.rejects(a.claims.record(won.claim, 'x'.repeat(maxOutcomeBytes)), new RangeError(`an outcome is JSON of at most 4096 bytes; got 4098 bytes`));
  await t.rejects(a.claims.record(won.claim, undefined), /got no JSON/);
  t.equal(fake.requests.length, before);
  t.match(await a.claims.record(won.claim, 'x'.repeat(maxOutcomeBytes - 2)), { recorded: true });
});

t.test('a claim cooldown below one second is stored as one (a Lease\'s minimum)', async (t) => {
  const { fake, replica } = await setup(t);
  await replica('drop-a').claims.claim(request({ cooldownSeconds: 0 }));
  t.match(fake.requests[0]!.body, { spec: { leaseDurationSeconds: 1 } });
});

t.test('a Lease at a claim\'s name with its fields missing reads as expired and is taken over; an unreadable outcome is handed back as text', async (t) => {
  const { fake, replica } = await setup(t);
  const a = replica('drop-a');
  fake.leases.set(`${namespace}/${name}`, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace, resourceVersion: '5', uid: 'u-5' } });
  t.match(await a.claims.claim(request()), { won: true, resumed: true, previous: { holder: '', event: { source: '', id: '' }, sameEvent: false } });
  t.match(fake.requests.at(-1)!.body, { spec: { leaseTransitions: 1 } });
  const stored = fake.leases.get(`${namespace}/${name}`)!;
  stored.metadata.annotations = { ...stored.metadata.annotations, 'falco-drop/outcome': '{not json' };
  t.match(await replica('drop-b').claims.claim(request()), { won: false, record: { outcome: { unreadable: '{not json' } } });
});

t.test('the Role the store needs is exactly what it uses, in its own namespace only', async (t) => {
  const { fake, clock, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const won = await a.claims.claim(request());
  if (!won.won) throw new Error('a should win');
  await a.claims.record(won.claim, {});
  await b.claims.claim(request());
  const grant = await a.budget.take(1);
  if (grant.ok) await grant.giveBack(1);
  await a.claims.release((await b.claims.claim(request({ rule: 'other' })) as { claim: typeof won.claim }).claim);
  clock.advance(3600);
  await a.claims.sweep(clock.now());
  const verb = (r: { method: string; path: string }) =>
    ({ GET: r.path === leasesPath ? 'list' : 'get', POST: 'create', PUT: 'update', DELETE: 'delete' })[r.method];
  t.ok(fake.requests.every((r) => r.path.startsWith(`${leasesPath}`)), 'every call is on Leases in drop\'s namespace');
  const leases = statePermissions.find((p) => p.resource === 'leases');
  t.same([...new Set(fake.requests.map(verb))].sort(), leases?.verbs);
  t.equal(leases?.apiGroup, 'coordination.k8s.io');
});

t.test('a claim answers for its own event past its cooldown too: a late copy of an answered event is never a new response', async (t) => {
  const { clock, replica } = await setup(t);
  const a = replica('drop-a');
  const b = replica('drop-b');
  const first = await a.claims.claim(request());
  if (!first.won) throw new Error('a should win');
  await a.claims.record(first.claim, { status: 200 });
  clock.advance(600);
  t.match(await b.claims.claim(request()), { won: false, record: { sameEvent: true, holder: 'drop-a', outcome: { status: 200 } } }, '10 minutes later, still answered from the record');
  t.match(await b.claims.claim(request({ event: { source: 's', id: 'e-2' } })), { won: true, resumed: false }, 'another event, past the cooldown, is a new response');
});

t.test('with retainSeconds, sweep() keeps a claim past its cooldown until then, so late copies still find it', async (t) => {
  const { fake, clock } = await setup(t);
  const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 });
  t.teardown(() => kube.close());
  const claims = new ClaimStore({ leases: kube.coordination, namespace, identity: 'drop-a', clock, retryAfterSeconds: 7, retainSeconds: 900 });
  await claims.claim(request({ cooldownSeconds: 60 }));
  await claims.claim(request({ rule: 'long', cooldownSeconds: 1200 }));
  clock.advance(899);
  t.equal(await claims.sweep(clock.now()), 0, 'past the cooldown, within the retention: kept');
  clock.advance(1);
  t.equal(await claims.sweep(clock.now()), 1, 'at the retention: deleted');
  t.same([...fake.leases.keys()], [`${namespace}/${claimName('long', request().pod.uid)}`], 'a cooldown longer than the retention still holds its claim');
});
