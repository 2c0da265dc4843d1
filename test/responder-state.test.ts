/**
 * The responder's claims and budget (src/responder.ts, src/safety.ts) through the app, against
 * the fake API server: what each state of a claim makes of a delivery, and that a claim is given
 * back whenever the Broker will retry, so the retry can act.
 */
import t, { type Test } from 'tap';
import { createKubeClient } from '../src/kube.ts';
import { replyId } from '../src/reply.ts';
import { budgetAnnotation, budgetName } from '../src/state/budget.ts';
import { claimAnnotations, claimName, ClaimStore } from '../src/state/claims.ts';
import { FakeKube, makePod, type FakeObject } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { createFakeAndApp, createTestApp, lower, type TestApp } from './helpers/app.ts';
import { ManualClock } from './state/harness.ts';

const ns = 'falco-drop';
const podName = 'mysql-db-7d59548d75-g9msc';
const podUid = '5f0a3c2e-9b1d-4e7a-8c6f-2b3d4e5f6a7b';
const podPath = `/api/v1/namespaces/default/pods/${podName}`;
const leases = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;
const source = 'https://falco.org';

/** Two response rules that match the same alert: a label, then a delete. */
const twoRules = [
  'rules:',
  '  - name: mark',
  '    match: {rules: ["Terminal shell in container"]}',
  '    actions: [{action: label, parameters: {labels: {falco-drop/suspicious: "true"}}}]',
  '  - name: kill',
  '    match: {rules: ["Terminal shell in container"]}',
  '    actions: [{action: delete}]',
  '',
].join('\n');

const claimKey = (rule: string, uid = podUid) => `${ns}/${claimName(rule, uid)}`;

/** The fake, the app (replica drop-test) on a clock the test moves, and another replica's claims. */
async function setup(t: Test, options: { policyYaml?: string; pods?: ReturnType<typeof makePod>[] } = {}) {
  const clock = new ManualClock(Date.parse('2025-06-12T09:21:08Z'));
  const { fake, drop } = await createFakeAndApp(t, options.pods ?? [makePod('default', podName, podUid)], { policyYaml: options.policyYaml, now: () => clock.now() });
  const other = (workingSeconds?: number) => {
    const kube = createKubeClient(fake.kubeConfig(), { timeoutMs: 5000 });
    t.teardown(() => kube.close());
    return new ClaimStore({ leases: kube.coordination, namespace: ns, identity: 'drop-other', clock, retryAfterSeconds: 5, ...(workingSeconds ? { workingSeconds } : {}) });
  };
  return { fake, drop, clock, other };
}

function deliver(drop: TestApp, id: string, body = falcoPayload()) {
  return drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders(id)), payload: body });
}

/** A claim another replica holds on this pod for `id`, made as that replica makes it. */
function claimRequest(rule: string, id: string) {
  return { rule, pod: { namespace: 'default', name: podName, uid: podUid }, event: { source, id }, cooldownSeconds: 60 };
}

/** Writes to pods (not Events, not Leases). */
function podWrites(fake: FakeKube) {
  return fake.workRequests.filter((r) => r.method !== 'GET' && r.path.startsWith('/api/v1/'));
}

function deletes(fake: FakeKube) {
  return fake.requests.filter((r) => r.method === 'DELETE');
}

function decisionLine(drop: TestApp, id: string) {
  return drop.logs.filter((l) => (l.ce as { id?: string } | undefined)?.id === id && l.status !== undefined).at(-1);
}

t.test('the same event in progress at another replica for the second rule: 503 DROP_IN_PROGRESS, the first claim given back', async (t) => {
  const { fake, drop, other, clock } = await setup(t, { policyYaml: twoRules });
  const held = await other(2).claim(claimRequest('kill', 'ev-busy'));
  if (!held.won) throw new Error('the other replica claims first');
  const res = await deliver(drop, 'ev-busy');
  t.equal(res.statusCode, 503);
  t.equal(res.headers['retry-after'], '2', 'until its working time is over, within the service Retry-After');
  t.match(JSON.parse(res.body), {
    error: {
      code: 'DROP_IN_PROGRESS',
      message: 'this event is being responded to by drop-other (rule kill); retry for its outcome',
      details: { rule: 'kill', holder: 'drop-other', workingUntil: new Date(clock.ms + 2000).toISOString() },
    },
  });
  t.notOk(fake.leases.has(claimKey('mark')), 'the claim of the first rule was given back');
  t.ok(fake.requests.some((r) => r.method === 'DELETE' && r.path === `${leases}/${claimName('mark', podUid)}`));
  t.ok(fake.leases.has(claimKey('kill')), "the other replica's claim stays");
  t.same(podWrites(fake), [], 'nothing done to the pod');
  await drop.app.background.drain();
  t.equal(fake.leases.get(`${ns}/${budgetName}`)?.metadata.annotations?.[budgetAnnotation], '[]', 'the budget slot taken while claiming is given back');

  // The other replica finishes and records; the Broker's retry gets its outcome, and acts on the rest.
  const recorded = { outcomes: [{ action: 'delete', status: 'done', reason: `deleted pod default/${podName} (grace 1s) at drop-other` }] };
  const written = await other().record(held.claim, recorded);
  t.equal(written.recorded, true);
  const retry = await deliver(drop, 'ev-busy');
  t.equal(retry.statusCode, 200);
  const data = JSON.parse(retry.body);
  t.same(data.rules, ['mark', 'kill']);
  t.match(data.actions, [{ action: 'label', status: 'done' }, recorded.outcomes[0]]);
  t.same(podWrites(fake).map((r) => r.method), ['PATCH'], 'only the label, by this replica; the delete was the other one’s');
});

t.test('busy with no holder named: answered as another replica', async (t) => {
  const { fake, drop, clock } = await setup(t);
  // A claim as the INTERFACE comment in src/state/claims.ts describes it, without a holder.
  const name = claimName('terminal-shell', podUid);
  const lease: FakeObject = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace: ns,
      uid: 'lease-uid-1',
      resourceVersion: '77',
      labels: { 'app.kubernetes.io/managed-by': 'falco-drop', 'falco-drop/state': 'claim' },
      annotations: {
        [claimAnnotations.rule]: 'terminal-shell',
        [claimAnnotations.podNamespace]: 'default',
        [claimAnnotations.podName]: podName,
        [claimAnnotations.podUid]: podUid,
        [claimAnnotations.eventSource]: source,
        [claimAnnotations.eventId]: 'ev-anon',
        [claimAnnotations.workingUntil]: new Date(clock.ms + 20_000).toISOString(),
      },
    },
    spec: { acquireTime: '2025-06-12T09:21:08.000000Z', renewTime: '2025-06-12T09:21:08.000000Z', leaseDurationSeconds: 60, leaseTransitions: 0 },
  };
  fake.leases.set(`${ns}/${name}`, lease);
  const res = await deliver(drop, 'ev-anon');
  t.equal(res.statusCode, 503);
  t.equal(res.headers['retry-after'], '5', 'at most the service Retry-After');
  t.match(JSON.parse(res.body).error, { code: 'DROP_IN_PROGRESS', message: /by another replica \(rule terminal-shell\)/, details: { holder: '' } });
  t.same(deletes(fake), []);
});

t.test('a claim that cannot be created', async (t) => {
  t.test('refused (403): final 422, nothing else tried, nothing deleted', async (t) => {
    const { fake, drop } = await setup(t, { policyYaml: twoRules });
    fake.fail({ method: 'POST', path: /\/leases$/, status: 403 });
    const res = await deliver(drop, 'ev-403');
    t.equal(res.statusCode, 422);
    t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_REJECTED', message: /^claim mark for pod default\/mysql-db-7d59548d75-g9msc .*Kubernetes answered 403/ });
    t.same(fake.stateRequests.map((r) => `${r.method} ${r.path}`), [`POST ${leases}`], 'the second rule is not claimed, no budget taken');
    t.same(deletes(fake), []);
    t.same(podWrites(fake), []);
  });

  t.test('unavailable (503): retried, nothing deleted', async (t) => {
    const { fake, drop } = await setup(t, { policyYaml: twoRules });
    fake.fail({ method: 'POST', path: /\/leases$/, status: 503 });
    const res = await deliver(drop, 'ev-503');
    t.equal(res.statusCode, 503);
    t.equal(res.headers['retry-after'], '5');
    t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_UNAVAILABLE' });
    t.same(deletes(fake), []);
    t.equal(fake.leases.size, 0);
    const retry = await deliver(drop, 'ev-503');
    t.equal(retry.statusCode, 200, 'the retry acts');
    t.notOk(fake.pods.has(`default/${podName}`));
  });

  t.test('the second rule’s claim fails after the first was won: the first is given back', async (t) => {
    const { fake, drop, other } = await setup(t, { policyYaml: twoRules });
    const theirs = await other().claim(claimRequest('kill', 'ev-older'));
    t.equal(theirs.won, true);
    fake.fail({ method: 'GET', path: new RegExp(`/leases/${claimName('kill', podUid)}$`), status: 503 });
    const res = await deliver(drop, 'ev-fail2');
    t.equal(res.statusCode, 503);
    t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_UNAVAILABLE', message: /^claim kill for pod/ });
    t.notOk(fake.leases.has(claimKey('mark')), 'given back');
    t.ok(fake.leases.has(claimKey('kill')), 'the other replica’s claim is left alone');
    t.same(podWrites(fake), []);
  });
});

t.test('the budget spent: 429, the claim given back, and the retry acts once a slot frees', async (t) => {
  const podB = makePod('default', 'web-5c9d8f7b6-x2k4p', '11111111-2222-4333-8444-555555555555', 'aaaabbbbcccc');
  const policyYaml = 'guards: {destructivePerMinute: 1}\nrules:\n  - name: kill\n    match: {rules: ["Terminal shell in container"]}\n    actions: [{action: delete}]\n';
  const { fake, drop, clock } = await setup(t, { policyYaml, pods: [makePod('default', podName, podUid), podB] });
  t.equal((await deliver(drop, 'ev-a')).statusCode, 200);
  t.notOk(fake.pods.has(`default/${podName}`));
  const aboutB = falcoPayload({ fields: { 'k8s.pod.name': 'web-5c9d8f7b6-x2k4p', 'container.id': 'aaaabbbbcccc' } });
  clock.advance(20);
  const res = await deliver(drop, 'ev-b', aboutB);
  t.equal(res.statusCode, 429);
  t.equal(res.headers['retry-after'], '40', 'when the slot taken 20 s ago frees');
  t.match(JSON.parse(res.body).error, { code: 'DROP_BUDGET_EXCEEDED', details: { target: 'default/web-5c9d8f7b6-x2k4p', rules: ['kill'] } });
  t.notOk(fake.leases.has(claimKey('kill', podB.metadata.uid)), 'the claim was given back');
  t.ok(fake.leases.has(claimKey('kill')), 'the claim of the response that was done stays');
  t.ok(fake.pods.has('default/web-5c9d8f7b6-x2k4p'));
  t.match(decisionLine(drop, 'ev-b'), { level: 40, code: 'DROP_BUDGET_EXCEEDED', status: 429 });
  clock.advance(40);
  const retry = await deliver(drop, 'ev-b', aboutB);
  t.equal(retry.statusCode, 200, 'the retry can act: its claim is free');
  t.notOk(fake.pods.has('default/web-5c9d8f7b6-x2k4p'));
});

t.test('the budget unreadable: 503, every claim given back', async (t) => {
  const { fake, drop } = await setup(t, { policyYaml: twoRules });
  fake.fail({ method: 'GET', path: new RegExp(`/leases/${budgetName}$`), status: 503 });
  const res = await deliver(drop, 'ev-budget');
  t.equal(res.statusCode, 503);
  t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_UNAVAILABLE', message: /take 1 from the destructive budget/ });
  t.equal(fake.leases.size, 0, 'both claims given back');
  t.same(
    deletes(fake).map((r) => r.path),
    [`${leases}/${claimName('mark', podUid)}`, `${leases}/${claimName('kill', podUid)}`],
  );
  t.same(podWrites(fake), []);
  t.equal((await deliver(drop, 'ev-budget')).statusCode, 200, 'the retry acts');
});

t.test('the same event already recorded by another replica: answered from the record', async (t) => {
  const { fake, drop, other } = await setup(t);
  const store = other();
  const theirs = await store.claim(claimRequest('terminal-shell', 'ev-rec'));
  if (!theirs.won) throw new Error('unreachable');
  const outcomes = [{ action: 'delete', status: 'done', reason: `deleted pod default/${podName} (grace 1s)` }];
  await store.record(theirs.claim, { outcomes });
  const before = fake.requests.length;
  const res = await deliver(drop, 'ev-rec');
  t.equal(res.statusCode, 200);
  t.equal(res.headers['ce-id'], replyId(`ce\u0000${source}\u0000ev-rec`), 'the reply id follows from the event, as at the replica that acted');
  t.match(JSON.parse(res.body), { result: 'done', rules: ['terminal-shell'], actions: outcomes, target: { uid: podUid } });
  const after = fake.requests.slice(before);
  await drop.app.background.drain();
  t.same(
    after.filter((r) => r.method !== 'GET' && !r.path.endsWith(budgetName) && (r.body as { metadata?: { name?: string } }).metadata?.name !== budgetName).map((r) => `${r.method} ${r.path}`),
    [`POST ${leases}`],
    'one claim attempt (409), nothing else written but the budget',
  );
  t.equal(fake.leases.get(`${ns}/${budgetName}`)?.metadata.annotations?.[budgetAnnotation], '[]', 'the slot taken while claiming given back');
  t.same(deletes(fake), [], 'no DELETE');
  t.ok(fake.pods.has(`default/${podName}`));
  t.match(decisionLine(drop, 'ev-rec'), { level: 30, decision: 'act', outcome: 'done', status: 200, fromRecord: [{ rule: 'terminal-shell', holder: 'drop-other' }] });
});

t.test('two replicas get one event: one acts, the other answers from its record with the same reply', async (t) => {
  const clock = new ManualClock(Date.parse('2025-06-12T09:21:08Z'));
  // As the API server does, a pod deleted with a grace period stays readable while it terminates:
  // the copy at the second replica finds it and its claim.
  const fake = await new FakeKube({ terminatingPods: true }).start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', podName, podUid));
  const a = await createTestApp({ fake, identity: 'drop-a', now: () => clock.now() });
  const b = await createTestApp({ fake, identity: 'drop-b', now: () => clock.now() });
  t.teardown(async () => {
    await a.close();
    await b.close();
    await fake.stop();
  });
  const first = await deliver(a, 'ev-copy');
  clock.advance(1);
  const second = await deliver(b, 'ev-copy');
  t.equal(first.statusCode, 200);
  t.equal(second.statusCode, 200);
  t.equal(second.headers['ce-id'], first.headers['ce-id'], 'one reply event, whichever replica answers');
  t.same(JSON.parse(second.body), JSON.parse(first.body), 'the same reply');
  t.equal(fake.requests.filter((r) => r.method === 'DELETE' && r.path === podPath).length, 1, 'one delete');
  t.notOk('fromRecord' in decisionLine(a, 'ev-copy')!);
  t.match(decisionLine(b, 'ev-copy'), { fromRecord: [{ rule: 'terminal-shell', holder: 'drop-a' }] });
  const other = await deliver(b, 'ev-later');
  t.equal(other.statusCode, 202, 'another event about the pod is in its cooldown');
  t.match(decisionLine(b, 'ev-later'), { decision: 'skip', msg: /cooldown: already responded to pod default\/mysql-db-7d59548d75-g9msc \(terminal-shell 59 s left\)/ });
});

t.test('one rule answered from the record, one won: both in the answer, only the won one acts', async (t) => {
  const { fake, drop, other } = await setup(t, { policyYaml: twoRules });
  const store = other();
  const theirs = await store.claim(claimRequest('mark', 'ev-mixed'));
  if (!theirs.won) throw new Error('unreachable');
  const marked = { action: 'label', status: 'done', reason: `labelled pod default/${podName}: falco-drop/suspicious=true (at drop-other)` };
  await store.record(theirs.claim, { outcomes: [marked] });
  const res = await deliver(drop, 'ev-mixed');
  t.equal(res.statusCode, 200);
  const data = JSON.parse(res.body);
  t.same(data.rules, ['mark', 'kill']);
  t.match(data.actions, [marked, { action: 'delete', status: 'done' }], 'in the policy’s order');
  t.equal(data.actions.length, 2);
  t.same(podWrites(fake).map((r) => `${r.method} ${r.path}`), [`DELETE ${podPath}`], 'no label patch: that was the other replica');
  await drop.app.background.drain();
  t.match(fake.leases.get(claimKey('kill'))?.metadata.annotations, { [claimAnnotations.outcome]: JSON.stringify({ outcomes: [data.actions[1]] }) }, 'its own outcome recorded');
  t.match(decisionLine(drop, 'ev-mixed'), { rules: ['mark', 'kill'], fromRecord: [{ rule: 'mark', holder: 'drop-other' }] });
});

t.test('the outcome cannot be recorded before the claim\'s working time is over: still 200 (the pod was deleted), and a warning', async (t) => {
  const { fake, drop, clock } = await setup(t);
  // Held at the API server until the working time is over, then refused.
  fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 500, delayMs: 300 });
  const res = await deliver(drop, 'ev-norecord');
  t.equal(res.statusCode, 200);
  t.match(JSON.parse(res.body), { result: 'done', actions: [{ action: 'delete', status: 'done' }] });
  t.notOk(fake.pods.has(`default/${podName}`));
  await fake.arrived('PUT', /\/leases\/drop-claim-/);
  clock.advance(30);
  await drop.app.background.drain();
  const warnings = drop.logs.filter((l) => l.level === 40 && /could not record the outcome on its claim/.test(String(l.msg)));
  t.equal(warnings.length, 1);
  t.match(warnings[0], { ce: { id: 'ev-norecord', source }, target: `default/${podName}`, rule: 'terminal-shell', stateErrors: [/^terminal-shell: record the outcome of claim falco-drop\/drop-claim-[0-9a-f]{40}: Kubernetes answered 500/] });
  t.equal(fake.leases.get(claimKey('terminal-shell'))?.metadata.annotations?.[claimAnnotations.outcome], undefined, 'not recorded');
  t.ok(fake.leases.has(claimKey('terminal-shell')), 'the claim holds the cooldown');
  t.equal((await deliver(drop, 'ev-norecord')).statusCode, 200, 'a redelivery here is answered from memory');
  t.equal(drop.logs.filter((l) => /could not record the outcome/.test(String(l.msg))).length, 1, 'and warned about once');
});

t.test('the answer does not wait for the outcome record: a redelivery meanwhile is told it is in progress, then answered from the record', async (t) => {
  // As the API server does, the deleted pod stays readable while it terminates.
  const fake = await new FakeKube({ terminatingPods: true }).start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', podName, podUid));
  const clock = new ManualClock(Date.parse('2025-06-12T09:21:08Z'));
  const drop = await createTestApp({ fake, now: () => clock.now() });
  const b = await createTestApp({ fake, identity: 'drop-b', now: () => clock.now() });
  t.teardown(async () => {
    await drop.close();
    await b.close();
    await fake.stop();
  });
  // The first record is held at the API server, then fails: it is tried again.
  fake.fail({ method: 'PUT', path: /\/leases\/drop-claim-/, status: 503, delayMs: 500 });
  const res = await deliver(drop, 'ev-later');
  t.equal(res.statusCode, 200, 'answered with the record on its way');
  t.match(JSON.parse(res.body), { result: 'done', actions: [{ action: 'delete', status: 'done' }] });
  t.equal(drop.app.background.pending > 0, true, 'the record is still pending');
  const copy = await deliver(b, 'ev-later');
  t.equal(copy.statusCode, 503, 'a copy at another replica meanwhile');
  t.match(JSON.parse(copy.body).error, { code: 'DROP_IN_PROGRESS', details: { holder: 'drop-test' } });
  t.equal(copy.headers['retry-after'], '5');
  t.equal((await deliver(drop, 'ev-later')).statusCode, 200, 'a copy here is answered from memory');
  await drop.app.background.drain();
  t.equal(fake.requests.filter((r) => r.method === 'PUT' && r.path.includes('/drop-claim-')).length, 2, 'recorded at the second try');
  t.match(JSON.parse(fake.leases.get(claimKey('terminal-shell'))?.metadata.annotations?.[claimAnnotations.outcome] ?? 'null'), { outcomes: [{ action: 'delete', status: 'done' }] });
  const retry = await deliver(b, 'ev-later');
  t.equal(retry.statusCode, 200, "the Broker's retry at the other replica");
  t.equal(retry.body, res.body, 'the same reply');
  t.match(decisionLine(b, 'ev-later'), { fromRecord: [{ rule: 'terminal-shell', holder: 'drop-test' }] });
  t.equal(deletes(fake).filter((r) => r.path === podPath).length, 1, 'one DELETE');
  t.equal(drop.logs.filter((l) => /could not record/.test(String(l.msg))).length, 0, 'no warning: it was recorded');
});

t.test('a retryable failure in the second rule after the first is done', async (t) => {
  t.test('the first is recorded, the second given back, the budget slot returned; the retry finishes', async (t) => {
    const { fake, drop } = await setup(t, { policyYaml: twoRules });
    fake.fail({ method: 'DELETE', path: /\/pods\//, status: 503 });
    const res = await deliver(drop, 'ev-half');
    t.equal(res.statusCode, 503);
    t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_UNAVAILABLE', message: /delete pod/ });
    const mark = fake.leases.get(claimKey('mark'));
    t.match(JSON.parse(mark?.metadata.annotations?.[claimAnnotations.outcome] ?? 'null'), { outcomes: [{ action: 'label', status: 'done' }] }, 'the first rule’s outcome recorded');
    t.notOk(fake.leases.has(claimKey('kill')), 'the second rule’s claim given back');
    t.equal(fake.leases.get(`${ns}/${budgetName}`)?.metadata.annotations?.[budgetAnnotation], '[]', 'the slot of the delete that did not happen returned');
    t.ok(fake.pods.has(`default/${podName}`));

    const retry = await deliver(drop, 'ev-half');
    t.equal(retry.statusCode, 200);
    t.match(JSON.parse(retry.body).actions, [{ action: 'label', status: 'done' }, { action: 'delete', status: 'done' }]);
    t.same(podWrites(fake).map((r) => r.method), ['PATCH', 'DELETE', 'DELETE'], 'the label once; the delete again');
    t.notOk(fake.pods.has(`default/${podName}`));
    t.match(decisionLine(drop, 'ev-half'), { status: 200, fromRecord: [{ rule: 'mark', holder: 'drop-test' }] });
  });

  t.test('a budget that cannot be given back keeps its slot; the answer is still the failure', async (t) => {
    const { fake, drop } = await setup(t, { policyYaml: twoRules });
    fake.fail({ method: 'DELETE', path: /\/pods\//, status: 503 });
    fake.fail({ method: 'PUT', path: new RegExp(`/leases/${budgetName}$`), status: 500 });
    const res = await deliver(drop, 'ev-giveback');
    t.equal(res.statusCode, 503);
    t.match(JSON.parse(res.body).error, { code: 'DROP_K8S_UNAVAILABLE', message: /delete pod/ });
    t.equal(JSON.parse(fake.leases.get(`${ns}/${budgetName}`)?.metadata.annotations?.[budgetAnnotation] ?? '[]').length, 1, 'the slot stays taken');
    t.ok(fake.requests.some((r) => r.method === 'PUT' && r.path.endsWith(`/${budgetName}`)), 'it was tried');
    t.notOk(fake.leases.has(claimKey('kill')));
  });
});
