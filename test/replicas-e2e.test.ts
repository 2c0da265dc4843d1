// Issue 8's "Done when", tried as a new user would: two drop processes (the built dist/main.js,
// HOSTNAME drop-a and drop-b) against one Kubernetes API (the fake, over real HTTP), each sent
// deliveries as the Knative Broker sends them, retried as the Broker retries them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FakeKube, makePod, type FakeObject } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { goTime, loadRequestFixture, retimed, sendRaw, type RawRequest } from './helpers/http.ts';
import { killService, logLine, startService, type Service } from './helpers/service.ts';

const terminalShellPolicy = 'rules:\n  - name: terminal-shell\n    match:\n      rules: ["Terminal shell in container"]\n    actions:\n      - action: delete\n';
const workingUntil = 'falco-drop/working-until';

/** One HTTP answer, or `dropped` when the connection closed without one (the process died). */
type Answer = { readonly status: number; readonly headers: Record<string, string>; readonly body: string } | { readonly dropped: string };

function code(answer: Answer): string | undefined {
  if ('dropped' in answer || answer.status < 400) return undefined;
  return (JSON.parse(answer.body) as { error?: { code?: string } }).error?.code;
}

function status(answer: Answer): number | 'dropped' {
  return 'dropped' in answer ? 'dropped' : answer.status;
}

/** The delivery's exact bytes, sent on their own connection as the Broker's dispatcher would. */
async function sendBytes(service: Service, bytes: Buffer): Promise<Answer> {
  try {
    const answer = await sendRaw(service.port, bytes);
    return Number.isInteger(answer.status) && answer.status > 0 ? answer : { dropped: 'connection closed without an answer' };
  } catch (error) {
    return { dropped: String(error) };
  }
}

/** A Broker delivery of a Falcosidekick CloudEvent (binary mode) with this id, about this pod, timed now. */
async function sendAlert(service: Service, id: string, pod: string): Promise<Answer> {
  const now = goTime(new Date());
  try {
    const res = await fetch(`http://127.0.0.1:${service.port}/`, {
      method: 'POST',
      headers: { ...brokerHeaders(id), 'Ce-Time': now },
      body: falcoPayload({ time: now, fields: { 'k8s.pod.name': pod } }),
    });
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
  } catch (error) {
    return { dropped: String(error) };
  }
}

/**
 * Delivers as the Broker does (contract.md §2): 404, 408, 409, 429, any 5xx or a dropped
 * connection is retried, with exponential backoff (the Broker's default starts at 0.2 s and
 * retries 10 times; here 25 ms, so the test stays short); anything else is final. Every answer
 * is kept, so a test sees the retried ones too.
 */
async function deliver(send: () => Promise<Answer>, retries = 10): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (let attempt = 0; ; attempt++) {
    const answer = await send();
    answers.push(answer);
    const retryable = 'dropped' in answer || [404, 408, 409, 429].includes(answer.status) || answer.status >= 500;
    if (!retryable || attempt === retries) return answers;
    await new Promise((resolve) => setTimeout(resolve, Math.min(25 * 2 ** attempt, 1000)));
  }
}

interface Pair {
  readonly fake: FakeKube;
  a: Service;
  b: Service;
  /** Starts (again) a replica with this HOSTNAME against the same API and policy; killed at the end of the test that made the pair. */
  start(identity: string): Promise<Service>;
}

/** One fake API and two drop processes on it, drop-a and drop-b, as two replicas of one revision. */
async function pair(t: Test, policyYaml: string, fakeOptions: ConstructorParameters<typeof FakeKube>[0] = {}): Promise<Pair> {
  const fake = await new FakeKube(fakeOptions).start();
  t.teardown(() => fake.stop());
  fake.addNamespace('default');
  const dir = mkdtempSync(join(tmpdir(), 'drop-replicas-'));
  writeFileSync(join(dir, 'kubeconfig'), fake.kubeConfigYaml());
  writeFileSync(join(dir, 'policy.yaml'), policyYaml);
  const start = async (identity: string) => {
    const service = await startService(t, {
      KUBECONFIG: join(dir, 'kubeconfig'),
      DROP_NAMESPACE: 'falco-drop',
      HOSTNAME: identity,
      DROP_POLICY: join(dir, 'policy.yaml'),
      // The API client's timeout (5 s by default) is not what this file tests: on a loaded
      // 2-core machine, 60 alerts at once per process can keep an answer from the fake waiting
      // longer than that (503 DROP_K8S_UNAVAILABLE, retried by the Broker). As test/flood.test.ts does.
      DROP_API_TIMEOUT_MS: '30000',
    });
    t.ok(
      service.lines.some((l) => l.state === 'cluster' && l.namespace === 'falco-drop' && l.identity === identity),
      `${identity} says its state lives in Leases in falco-drop, held as ${identity}`,
    );
    return service;
  };
  const [a, b] = await Promise.all([start('drop-a'), start('drop-b')]);
  return { fake, a, b, start };
}

const podPath = (pod: string) => `/api/v1/namespaces/default/pods/${pod}`;

/** The DELETEs of this pod that reached the API. */
function deletesOf(fake: FakeKube, pod: string) {
  return fake.requests.filter((r) => r.method === 'DELETE' && r.path === podPath(pod));
}

/** The claim Lease on the pod named (the policies here have one rule), as the fake stores it. */
function claimOf(fake: FakeKube, pod: string): FakeObject | undefined {
  return [...fake.leases.values()].find((l) => l.metadata.annotations?.['falco-drop/pod-name'] === pod);
}

/**
 * What the passing of the claim's working time (30 s after it was claimed) does, without the
 * wait: its `falco-drop/working-until` is in the past, as it would be 30 s later.
 */
function endWorkingTime(fake: FakeKube, pod: string): void {
  const annotations = claimOf(fake, pod)?.metadata.annotations;
  if (!annotations?.[workingUntil]) throw new Error(`no claim on ${pod} to end the working time of`);
  annotations[workingUntil] = new Date(Date.now() - 1000).toISOString();
}

const delivery = loadRequestFixture('broker-delivery.http');
const fixtureId = delivery.headers['Ce-Id'] as string;
const fixturePod = 'mysql-db-7d59548d75-g9msc';

/** The fixture's delivery with another CloudEvent id and pod name, every other byte as captured (retimed() sets the length). */
function fixtureFor(id: string, pod: string): RawRequest {
  const bytes = Buffer.from(delivery.bytes.toString('utf8').replace(`Ce-Id: ${fixtureId}`, `Ce-Id: ${id}`).replaceAll(fixturePod, pod), 'utf8');
  return { ...delivery, bytes, headers: { ...delivery.headers, 'Ce-Id': id }, body: delivery.body.replaceAll(fixturePod, pod) };
}

/** `status` answered by `hold.method` on `hold.path`, 3 s late: long enough to kill a replica meanwhile. */
interface Hold {
  readonly method: string;
  readonly path: RegExp;
  readonly status: number;
  readonly body?: unknown;
}

/**
 * Sends the delivery to `p.a`, holds the API request `hold` matches, and SIGKILLs drop-a once
 * that request has reached the API, so its client sees the connection drop (and, as the Broker
 * does, retries).
 */
async function killAWhile(t: Test, p: Pair, bytes: Buffer, hold: Hold, options: { alsoWaitFor?: Omit<Hold, 'status'>; answered?: boolean } = {}): Promise<void> {
  p.fake.fail({ ...hold, delayMs: 3000 });
  const since = p.fake.requests.length;
  const inFlight = sendBytes(p.a, bytes);
  // FakeKube.arrived() looks at every request so far; this one must come after `since`.
  for (const wanted of [hold, options.alsoWaitFor ?? hold]) {
    for (const deadline = Date.now() + 10_000; !p.fake.requests.slice(since).some((r) => r.method === wanted.method && wanted.path.test(r.path)); ) {
      if (Date.now() > deadline) throw new Error(`no ${wanted.method} ${wanted.path} reached the API`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  t.equal(await killService(p.a), 'SIGKILL', `drop-a is killed while its ${hold.method} is held`);
  if (options.answered) t.match(await inFlight, { status: 200 }, 'drop-a had answered: the record is written after the answer');
  else t.match(await inFlight, { dropped: String }, "drop-a's client sees the connection drop");
}

/** Waits for drop-b's claim on `pod` to carry its outcome (written after the answer). */
async function recorded(p: Pair, pod: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !claimOf(p.fake, pod)?.metadata.annotations?.['falco-drop/outcome']; ) {
    if (Date.now() > deadline) throw new Error(`no outcome recorded on the claim of ${pod}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** drop-a started again (same name, as a replacement pod of the revision may be), and the last event delivered to it again. */
async function restartA(t: Test, p: Pair, last: { bytes: Buffer; pod: string }): Promise<void> {
  p.a = await p.start('drop-a');
  const deletes = deletesOf(p.fake, last.pod).length;
  const answers = await deliver(() => sendBytes(p.a, last.bytes));
  t.ok([200, 202].includes(status(answers.at(-1)!) as number), `drop-a, started again, answers the same event 2xx (${answers.map(status).join(', ')})`);
  t.equal(deletesOf(p.fake, last.pod).length, deletes, 'and does not act on it again');
}

t.test('two replicas on one API: act once, and a replica killed in the middle loses nothing', async (t) => {
  // The API server keeps a deleted pod readable while it terminates, as kube-apiserver does
  // until the kubelet has stopped it: alerts after the delete still find the pod, so only the
  // claims stand between them and a second DELETE.
  const p = await pair(t, terminalShellPolicy, { terminatingPods: true });

  await t.test('both sent the same flood about one pod: one DELETE, every alert ends 2xx', async (t) => {
    const pod = 'mysql-db-7d59548d75-flood';
    p.fake.addPod(makePod('default', pod, 'uid-flood'));
    // 100 alerts (distinct CloudEvent ids) split across both; 20 of them delivered to both at
    // once (delivery is at-least-once: a copy can reach another replica in parallel).
    const deliveries: { id: string; to: Service }[] = [];
    for (let i = 0; i < 100; i++) deliveries.push({ id: `flood-${i}`, to: i % 2 === 0 ? p.a : p.b });
    for (let i = 0; i < 20; i++) deliveries.push({ id: `flood-${i}`, to: i % 2 === 0 ? p.b : p.a });
    const results = await Promise.all(deliveries.map(async (d) => ({ ...d, answers: await deliver(() => sendAlert(d.to, d.id, pod)) })));

    const all = results.flatMap((r) => r.answers);
    const unexpected = all.filter((x) => status(x) === 'dropped' || ((status(x) as number) >= 500 && code(x) !== 'DROP_IN_PROGRESS'));
    t.same(unexpected.map((x) => [status(x), code(x)]), [], 'no 5xx but 503 DROP_IN_PROGRESS, no connection dropped');
    for (const x of new Set(unexpected.map((x) => ('dropped' in x ? x.dropped : x.body)))) t.comment(`unexpected: ${x}`);
    t.same(results.map((r) => status(r.answers.at(-1)!)).filter((s) => s !== 200 && s !== 202), [], 'every alert ends 2xx');
    t.comment(`${all.length} answers to ${results.length} deliveries, ${all.filter((x) => code(x) === 'DROP_IN_PROGRESS').length} of them 503 DROP_IN_PROGRESS (retried)`);
    t.equal(deletesOf(p.fake, pod).length, 1, 'exactly one DELETE of the pod reached the API');
    const acted = new Set(results.filter((r) => status(r.answers.at(-1)!) === 200).map((r) => r.id));
    t.equal(acted.size, 1, 'one event answered with the reply of the delete (200); every other alert skipped (202, cooldown)');
    const [winner] = [...acted] as [string];
    t.match(claimOf(p.fake, pod)?.metadata.annotations, { 'falco-drop/event-id': winner, 'falco-drop/outcome': /"status":"done"/ }, 'the claim names that event and records its outcome');

    // That event delivered again to each replica: the same reply, whichever answers; no second delete.
    const again = await Promise.all([p.a, p.b].map((s) => deliver(() => sendAlert(s, winner, pod))));
    t.same(again.map((x) => status(x.at(-1)!)), [200, 200], 'answered 200 by both');
    const replies = [...results.filter((r) => r.id === winner).map((r) => r.answers.at(-1)!), ...again.map((x) => x.at(-1)!)];
    t.equal(new Set(replies.map((x) => ('dropped' in x ? undefined : x.headers['ce-id']))).size, 1, 'with one reply CloudEvent id');
    t.equal(deletesOf(p.fake, pod).length, 1, 'still one DELETE');
  });

  await t.test('killed before its claim (the pod read held): drop-b deletes once, at once', async (t) => {
    // The Broker's delivery exactly as captured.
    const pod = fixturePod;
    const added = p.fake.addPod(makePod('default', pod, 'uid-kill-read'));
    const bytes = retimed(delivery, new Date());
    await killAWhile(t, p, bytes, { method: 'GET', path: new RegExp(`${podPath(pod)}$`), status: 200, body: { apiVersion: 'v1', kind: 'Pod', ...added } });
    t.equal(claimOf(p.fake, pod), undefined, 'drop-a died before it claimed anything');

    const answers = await deliver(() => sendBytes(p.b, bytes));
    t.same(answers.map(status), [200], 'the redelivery to drop-b is answered with its delete');
    t.equal(deletesOf(p.fake, pod).length, 1, 'one DELETE');
    t.ok(p.fake.pods.get(`default/${pod}`)?.metadata.deletionTimestamp, 'the pod is terminating');
    await recorded(p, pod);
    t.match(claimOf(p.fake, pod), { spec: { holderIdentity: 'drop-b' }, metadata: { annotations: { 'falco-drop/event-id': fixtureId, 'falco-drop/outcome': /"status":"done"/ } } }, 'drop-b holds the claim and recorded the outcome');
    await restartA(t, p, { bytes, pod });
  });

  await t.test('killed after its claim, before the DELETE (the budget update held): 503 DROP_IN_PROGRESS, then drop-b resumes and deletes once', async (t) => {
    const pod = 'mysql-db-7d59548d75-kill2';
    p.fake.addPod(makePod('default', pod, 'uid-kill-claimed'));
    const bytes = retimed(fixtureFor(`kill-2-${fixtureId}`, pod), new Date());
    // The budget is taken while the rule is claimed: drop-a is killed once its claim has reached the API.
    await killAWhile(t, p, bytes, { method: 'PUT', path: /\/leases\/drop-budget$/, status: 500 }, { alsoWaitFor: { method: 'POST', path: /\/leases$/ } });
    t.match(claimOf(p.fake, pod), { spec: { holderIdentity: 'drop-a' } }, 'drop-a holds the claim');
    t.notOk(claimOf(p.fake, pod)?.metadata.annotations?.['falco-drop/outcome'], 'with no outcome');
    t.equal(deletesOf(p.fake, pod).length, 0, 'and sent no DELETE');

    const busy = await sendBytes(p.b, bytes);
    t.equal(status(busy), 503, 'drop-b answers the redelivery 503');
    t.equal(code(busy), 'DROP_IN_PROGRESS', 'DROP_IN_PROGRESS: the event is being responded to');
    t.match(busy, { headers: { 'retry-after': /^[1-9]\d*$/ } }, 'with Retry-After');
    t.match(JSON.parse((busy as { body: string }).body), { error: { details: { holder: 'drop-a' } } }, 'by drop-a');
    t.equal(deletesOf(p.fake, pod).length, 0, 'drop-b does not act meanwhile');

    endWorkingTime(p.fake, pod);
    const answers = await deliver(() => sendBytes(p.b, bytes));
    t.same(answers.map(status), [200], 'once the working time is over, the retry is answered with the delete');
    t.equal(deletesOf(p.fake, pod).length, 1, 'one DELETE');
    await recorded(p, pod);
    t.match(claimOf(p.fake, pod), { spec: { holderIdentity: 'drop-b', leaseTransitions: 1 }, metadata: { annotations: { 'falco-drop/outcome': /"status":"done"/ } } }, 'drop-b took the claim over and recorded the outcome');
    await restartA(t, p, { bytes, pod });
  });

  await t.test('killed after the DELETE, before recording it (the claim update held): drop-b finds the pod gone, no second DELETE', async (t) => {
    const pod = 'mysql-db-7d59548d75-kill3';
    p.fake.addPod(makePod('default', pod, 'uid-kill-record'));
    const bytes = retimed(fixtureFor(`kill-3-${fixtureId}`, pod), new Date());
    await killAWhile(t, p, bytes, { method: 'PUT', path: /\/leases\/drop-claim-[0-9a-f]{40}$/, status: 500 }, { answered: true });
    t.equal(deletesOf(p.fake, pod).length, 1, "drop-a's DELETE was done");
    t.notOk(claimOf(p.fake, pod)?.metadata.annotations?.['falco-drop/outcome'], 'its outcome never recorded');
    // The kubelet has stopped the pod (drop's grace period is 1 s) and the API server forgets it.
    p.fake.pods.delete(`default/${pod}`);

    const answers = await deliver(() => sendBytes(p.b, bytes));
    t.same(answers.map(status), [202], 'drop-b answers the redelivery 2xx');
    t.match(await logLine(p.b, (l) => l.decision === 'skip' && l.target === `default/${pod}`), { msg: /already gone/ }, 'the pod is already gone');
    t.equal(deletesOf(p.fake, pod).length, 1, 'no second DELETE');
    await restartA(t, p, { bytes, pod });
  });

  await t.test('killed after the DELETE, before recording it, the pod still terminating when drop-b takes over', async (t) => {
    // A pod stays Terminating past the claim's 30 s working time when its node is unreachable
    // (the kubelet never confirms) or a finalizer holds it. The claim has no outcome and the pod
    // is still readable, so drop-b resumes the whole response; its delete sees the pod already
    // being deleted with its own grace period and sends no second DELETE.
    const pod = 'mysql-db-7d59548d75-kill4';
    p.fake.addPod(makePod('default', pod, 'uid-kill-terminating'));
    const bytes = retimed(fixtureFor(`kill-4-${fixtureId}`, pod), new Date());
    await killAWhile(t, p, bytes, { method: 'PUT', path: /\/leases\/drop-claim-[0-9a-f]{40}$/, status: 500 }, { answered: true });
    t.equal(deletesOf(p.fake, pod).length, 1, "drop-a's DELETE was done");
    t.ok(p.fake.pods.get(`default/${pod}`)?.metadata.deletionTimestamp, 'the pod is terminating');

    t.equal(code(await sendBytes(p.b, bytes)), 'DROP_IN_PROGRESS', 'drop-b: 503 DROP_IN_PROGRESS while the working time runs');
    endWorkingTime(p.fake, pod);
    const answers = await deliver(() => sendBytes(p.b, bytes));
    t.ok([200, 202].includes(status(answers.at(-1)!) as number), `then the retry ends 2xx (${answers.map(status).join(', ')})`);
    t.equal(deletesOf(p.fake, pod).length, 1, 'no second DELETE');
  });
});

t.test('a budget of 2 destructive actions per minute holds across both replicas', async (t) => {
  const { fake, a, b } = await pair(t, `guards:\n  destructivePerMinute: 2\n${terminalShellPolicy}`);
  const pods = Array.from({ length: 5 }, (_, i) => `mysql-db-7d59548d75-budget${i}`);
  for (const [i, name] of pods.entries()) fake.addPod(makePod('default', name, `uid-budget-${i}`));

  // One alert per pod, alternately to drop-a and drop-b, all at once. Each first answer is what
  // counts here: the Broker retries a 429 later, after the budget's minute has run.
  const answers = await Promise.all(pods.map((name, i) => sendAlert(i % 2 === 0 ? a : b, `budget-${i}`, name)));
  t.equal(fake.requests.filter((r) => r.method === 'DELETE' && r.path.includes('/pods/')).length, 2, 'exactly 2 DELETEs');
  t.equal(answers.filter((x) => status(x) === 200).length, 2, 'answered 200 with the reply of the delete');
  const refused = answers.filter((x) => status(x) !== 200);
  t.same(refused.map((x) => [status(x), code(x)]), Array(3).fill([429, 'DROP_BUDGET_EXCEEDED']), 'the others 429 DROP_BUDGET_EXCEEDED');
  for (const x of refused) t.match(x, { headers: { 'retry-after': /^[1-9]\d*$/ } }, 'with Retry-After');
  for (const x of refused.filter((x) => code(x) !== 'DROP_BUDGET_EXCEEDED')) t.comment(`unexpected: ${'dropped' in x ? x.dropped : x.body}`);
  t.equal(fake.pods.size, 3, 'three pods left');
  t.equal([...fake.leases.values()].filter((l) => l.metadata.name.startsWith('drop-claim-')).length, 2, "the refused alerts' claims are given back, so the Broker's retries can act");
  const slots = JSON.parse(fake.leases.get('falco-drop/drop-budget')?.metadata.annotations?.['falco-drop/destructive-actions'] ?? '[]') as number[];
  t.equal(slots.length, 2, 'the budget Lease holds 2 slots');
});
