import t, { type Test } from 'tap';
import { FakeKube, makePod, statusBody } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { createTestApp, lower, type TestApp } from './helpers/app.ts';

const podPath = '/api/v1/namespaces/default/pods/mysql-db-7d59548d75-g9msc';
const reviewPath = '/apis/authentication.k8s.io/v1/tokenreviews';
const audience = 'falco-drop';
/** The account Knative gives the Trigger `drop-shell` in namespace falco-drop for OIDC. */
const trigger = 'system:serviceaccount:falco-drop:drop-shell-oidc-eventing.knative.dev-trigger';

interface Setup {
  readonly fake: FakeKube;
  readonly drop: TestApp;
  /** The clock's time; move it to age the remembered reviews. */
  now: Date;
}

async function setup(t: Test, options: { allowedSenders?: string[]; auth?: boolean } = {}): Promise<Setup> {
  const fake = await new FakeKube().start();
  fake.addNamespace('default');
  fake.addPod(makePod('default', 'mysql-db-7d59548d75-g9msc', 'uid-mysql'));
  const state = { fake, now: new Date('2025-06-12T09:21:08Z') } as Setup;
  const drop = await createTestApp({
    fake,
    now: () => state.now,
    senderAuth: options.auth === false ? undefined : { audience, allowedSenders: options.allowedSenders },
  });
  Object.assign(state, { drop });
  t.teardown(async () => {
    await drop.close();
    await fake.stop();
  });
  return state;
}

let ids = 0;
function deliver(drop: TestApp, authorization?: string, id = `auth-${++ids}`) {
  const headers = lower(brokerHeaders(id));
  return drop.app.inject({ method: 'POST', url: '/', headers: authorization === undefined ? headers : { ...headers, authorization }, payload: falcoPayload() });
}

const reviews = (fake: FakeKube) => fake.requests.filter((r) => r.path === reviewPath);
const deleted = (fake: FakeKube) => fake.requests.some((r) => r.method === 'DELETE' && r.path === podPath);

t.test('a Broker token for the audience, from a Trigger in drop\'s namespace, is let through', async (t) => {
  const { fake, drop } = await setup(t);
  const token = fake.addToken(trigger, [audience]);
  const res = await deliver(drop, `Bearer ${token}`, 'auth-ok');
  t.equal(res.statusCode, 200);
  t.ok(deleted(fake), 'the pod is deleted');
  // What the client sent: one TokenReview asking about this token for this audience.
  const [review] = reviews(fake);
  t.equal(review?.method, 'POST');
  t.equal(review?.contentType, 'application/json');
  t.same(review?.body, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } });
  t.equal(fake.requests[0]?.path, reviewPath, 'the sender is checked before anything else is read');
  const line = drop.logs.find((l) => l.decision === 'act');
  t.equal(line?.sender, trigger, 'the log line names the sender');
  t.notMatch(JSON.stringify(drop.logs), token, 'the token itself is never logged');
});

t.test('no token, or not a bearer token: 401, nothing asked, nothing done', async (t) => {
  const { fake, drop } = await setup(t);
  for (const [authorization, why] of [
    [undefined, 'no Authorization header'],
    ['Basic YWRtaW46YWRtaW4=', 'the Authorization header is not "Bearer <token>"'],
    ['Bearer', 'the Authorization header is not "Bearer <token>"'],
  ] as const) {
    const res = await deliver(drop, authorization);
    t.equal(res.statusCode, 401, String(authorization));
    t.equal(res.headers['www-authenticate'], 'Bearer');
    t.same(res.json(), { error: { code: 'DROP_UNAUTHENTICATED', message: `${why}: this service takes events only with a token for audience falco-drop` } });
  }
  t.same(fake.requests, [], 'neither the token nor the pod was looked at');
  const rejected = drop.logs.filter((l) => l.code === 'DROP_UNAUTHENTICATED');
  t.equal(rejected.length, 3);
  t.equal(rejected[0]?.level, 40, 'a refused sender is logged as a warning');
});

t.test('a token the API server does not know, or one for another audience: 401, with its reason', async (t) => {
  const { fake, drop } = await setup(t);
  const forged = await deliver(drop, 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtZSJ9.');
  t.equal(forged.statusCode, 401);
  t.equal(forged.json().error.message, 'the token was refused: [invalid bearer token, square/go-jose: error in cryptographic primitive]');
  const other = fake.addToken(trigger, ['https://kubernetes.default.svc.cluster.local']);
  const wrong = await deliver(drop, `Bearer ${other}`);
  t.equal(wrong.statusCode, 401);
  t.match(wrong.json().error.message, /^the token was refused: \[invalid bearer token, token audiences \["https:\/\/kubernetes.default.svc.cluster.local"\] is invalid for the target audiences \["falco-drop"\]\]$/);
  t.notOk(deleted(fake));
});

t.test('an API server that authenticates but ignores the audience is not trusted', async (t) => {
  const { fake, drop } = await setup(t);
  // Not audience-aware: authenticated, with no audiences in the status (TokenReview's doc).
  fake.fail({ method: 'POST', path: /tokenreviews/, status: 201, body: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', status: { authenticated: true, user: { username: trigger } } } });
  const res = await deliver(drop, `Bearer ${fake.addToken(trigger, ['elsewhere'])}`);
  t.equal(res.statusCode, 401);
  t.equal(res.json().error.message, 'the token was refused: the token is not for audience falco-drop');
  t.notOk(deleted(fake));
});

t.test('odd TokenReview answers are refused, never taken as a sender', async (t) => {
  const { fake, drop } = await setup(t);
  const token = `Bearer ${fake.addToken(trigger, [audience])}`;
  const review = { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1' };
  // No status at all, and authenticated with no user: neither lets the alert through.
  fake.fail({ method: 'POST', path: /tokenreviews/, status: 201, body: review });
  const empty = await deliver(drop, token, 'odd-1');
  t.equal(empty.statusCode, 401);
  t.equal(empty.json().error.message, 'the token was refused: the token is not valid');
  fake.fail({ method: 'POST', path: /tokenreviews/, status: 201, body: { ...review, status: { authenticated: true, audiences: [audience] } } });
  const nobody = await deliver(drop, `Bearer ${fake.addToken(trigger, [audience], new Date('2031-01-01T00:00:00Z'))}`, 'odd-2');
  t.equal(nobody.statusCode, 403);
  t.match(nobody.json().error.message, /^a token with no user name is not an allowed sender/);
  t.notOk(deleted(fake));
});

t.test('a valid token from an account that is not an allowed sender: 403', async (t) => {
  const { fake, drop } = await setup(t);
  for (const username of [
    'system:serviceaccount:default:attacker',
    // A Trigger in another namespace: someone there pointed their own Broker at drop.
    'system:serviceaccount:team-a:mine-oidc-eventing.knative.dev-trigger',
  ]) {
    const res = await deliver(drop, `Bearer ${fake.addToken(username, [audience])}`);
    t.equal(res.statusCode, 403, username);
    t.same(res.json().error, {
      code: 'DROP_FORBIDDEN',
      message: `${username} is not an allowed sender (allowed: system:serviceaccount:falco-drop:*-oidc-eventing.knative.dev-trigger)`,
      details: { sender: username },
    });
  }
  t.notOk(deleted(fake));
});

t.test('DROP_ALLOWED_SENDERS names the accounts that may send', async (t) => {
  const { fake, drop } = await setup(t, { allowedSenders: ['system:serviceaccount:ops:responder', 'system:serviceaccount:falco:*'] });
  t.equal((await deliver(drop, `Bearer ${fake.addToken(trigger, [audience])}`)).statusCode, 403, 'the default is replaced');
  t.equal((await deliver(drop, `Bearer ${fake.addToken('system:serviceaccount:ops:responder', [audience])}`)).statusCode, 200);
  t.equal((await deliver(drop, `Bearer ${fake.addToken('system:serviceaccount:falco:falcosidekick', [audience])}`)).statusCode, 202, 'let in (and a cooldown skip)');
  t.equal((await deliver(drop, `Bearer ${fake.addToken('system:serviceaccount:ops:responder2', [audience])}`)).statusCode, 403);
});

t.test('when the API server cannot answer, the Broker is asked to retry, and nothing is remembered', async (t) => {
  const { fake, drop } = await setup(t);
  const token = fake.addToken(trigger, [audience]);
  fake.fail({ method: 'POST', path: /tokenreviews/, status: 503 });
  const res = await deliver(drop, `Bearer ${token}`, 'auth-retry');
  t.equal(res.statusCode, 503);
  t.equal(res.headers['retry-after'], '5');
  t.equal(res.json().error.code, 'DROP_K8S_UNAVAILABLE');
  t.match(res.json().error.message, /^review the sender's token: Kubernetes answered 503/);
  t.notOk(deleted(fake));
  const again = await deliver(drop, `Bearer ${token}`, 'auth-retry');
  t.equal(again.statusCode, 200, 'the redelivery is reviewed afresh and acted on');
  t.equal(reviews(fake).length, 2);
});

t.test('without RBAC for tokenreviews, the answer says so and is final', async (t) => {
  const { fake, drop } = await setup(t);
  fake.fail({
    method: 'POST',
    path: /tokenreviews/,
    status: 403,
    body: statusBody(403, 'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:falco-drop:drop" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope'),
  });
  const res = await deliver(drop, `Bearer ${fake.addToken(trigger, [audience])}`);
  t.equal(res.statusCode, 422);
  t.match(res.json().error.message, /cannot create resource "tokenreviews"/);
});

t.test('one review per token until it is a minute old or expires, shared by concurrent deliveries', async (t) => {
  const state = await setup(t);
  const { fake, drop } = state;
  const token = fake.addToken(trigger, [audience]);
  const answers = await Promise.all([1, 2, 3, 4].map(() => deliver(drop, `Bearer ${token}`)));
  t.same(answers.map((a) => a.statusCode).sort(), [200, 202, 202, 202], 'one acts; the cooldown skips the rest');
  t.equal(reviews(fake).length, 1, 'four deliveries at once, one review');
  state.now = new Date(state.now.getTime() + 59_000);
  await deliver(drop, `Bearer ${token}`);
  t.equal(reviews(fake).length, 1, 'still trusted after 59 s');
  state.now = new Date(state.now.getTime() + 2_000);
  await deliver(drop, `Bearer ${token}`);
  t.equal(reviews(fake).length, 2, 'reviewed again after a minute');

  // A token that expires sooner is reviewed again once it has expired: the fake then refuses it.
  const short = fake.addToken(trigger, [audience], new Date(state.now.getTime() + 10_000));
  t.equal((await deliver(drop, `Bearer ${short}`)).statusCode, 202);
  fake.tokens.delete(short);
  state.now = new Date(state.now.getTime() + 9_000);
  t.equal((await deliver(drop, `Bearer ${short}`)).statusCode, 202, 'trusted until its exp');
  state.now = new Date(state.now.getTime() + 2_000);
  t.equal((await deliver(drop, `Bearer ${short}`)).statusCode, 401, 'refused once expired');
});

t.test('a token whose claims cannot be read is trusted for the minute only', async (t) => {
  const state = await setup(t);
  const { fake, drop } = state;
  const opaque = ['opaque-token', 'a.not-base64-json.c', `a.${Buffer.from('{"exp":"soon"}').toString('base64url')}.c`, `a.${Buffer.from('null').toString('base64url')}.c`];
  for (const token of opaque) fake.tokens.set(token, { username: trigger, audiences: [audience] });
  for (const token of opaque) t.not((await deliver(drop, `Bearer ${token}`)).statusCode, 401, token);
  state.now = new Date(state.now.getTime() + 30_000);
  for (const token of opaque) await deliver(drop, `Bearer ${token}`);
  t.equal(reviews(fake).length, 4, 'each reviewed once within the minute');
  state.now = new Date(state.now.getTime() + 31_000);
  for (const token of opaque) await deliver(drop, `Bearer ${token}`);
  t.equal(reviews(fake).length, 8);
});

t.test('health and readiness need no token; readiness says who may send', async (t) => {
  const { fake, drop } = await setup(t);
  t.equal((await drop.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  const ready = await drop.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200);
  t.same(ready.json().senderAuthentication, { audience, allowedSenders: ['system:serviceaccount:falco-drop:*-oidc-eventing.knative.dev-trigger'] });
  t.same(fake.requests, []);
});

t.test('with authentication off, a token is neither needed nor checked', async (t) => {
  const { fake, drop } = await setup(t, { auth: false });
  t.equal((await deliver(drop)).statusCode, 200);
  t.equal((await deliver(drop, 'Bearer whatever', 'auth-off-2')).statusCode, 202);
  t.same(reviews(fake), []);
  t.equal((await drop.app.inject({ method: 'GET', url: '/readyz' })).json().senderAuthentication, null);
});
