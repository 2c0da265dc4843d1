import fc from 'fast-check';
import t from 'tap';
import { FakeKube, makePod } from './helpers/fake-kube.ts';
import { brokerHeaders, falcoPayload } from './helpers/falco.ts';
import { createTestApp, lower } from './helpers/app.ts';

const falcoRules = ['Terminal shell in container', 'Write below etc', 'Read sensitive file untrusted'];
const priorities = ['Emergency', 'Critical', 'Warning', 'Notice', 'Debug'];
const namespaces = ['default', 'team-a', 'quiet', 'kube-system', 'kube-public', 'kube-node-lease', 'knative-serving', 'knative-eventing', 'falco', 'falco-drop'];
const pods = ['web-1', 'web-2', 'optout'];

/** Never written to, whatever the policy: the built-in floor, drop's own namespace, opted out. */
const floor = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'knative-serving', 'knative-eventing', 'falco', 'falco-drop', 'quiet']);

const step = fc.oneof(
  fc.constant({ action: 'delete' }),
  fc.constant({ action: 'evict' }),
  fc.constant({ action: 'label', parameters: { labels: { suspicious: 'true' } } }),
  fc.constant({ action: 'annotate', parameters: { annotations: { 'falco-drop/note': 'seen' } } }),
  fc.constant({ action: 'isolate' }),
  fc.constant({ action: 'detach' }),
);
const match = fc.record(
  {
    rules: fc.subarray(falcoRules, { minLength: 1 }),
    priority: fc.tuple(fc.constantFrom('>=', '<', '', '!='), fc.constantFrom(...priorities)).map(([c, p]) => `${c}${p}`),
    namespaces: fc.record({ include: fc.subarray(namespaces, { minLength: 1 }), exclude: fc.subarray(namespaces) }, { requiredKeys: [] }),
  },
  { requiredKeys: [] },
);
const rule = fc.record({ match, actions: fc.array(step, { minLength: 1, maxLength: 3 }), continue: fc.boolean(), dryRun: fc.boolean() });
const policy = fc.record({ rules: fc.array(rule, { minLength: 1, maxLength: 3 }), protectTeamA: fc.boolean() });
type PolicyInput = typeof policy extends fc.Arbitrary<infer T> ? T : never;
/**
 * Alerts lean towards the namespaces and pods a policy may act on: drawn evenly, only one run in
 * 25 acted, so 80 runs sometimes exercised no real response at all. Every value stays reachable.
 */
const alert = fc.record({
  rule: fc.constantFrom(...falcoRules),
  priority: fc.constantFrom(...priorities),
  namespace: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('default', 'team-a') }, { weight: 2, arbitrary: fc.constantFrom(...namespaces) }),
  pod: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('web-1', 'web-2') }, { weight: 1, arbitrary: fc.constantFrom(...pods) }),
});

function policyYaml(p: PolicyInput): string {
  const rules = p.rules.map((r, i) => ({ name: `r${i}`, ...r }));
  return JSON.stringify({ ...(p.protectTeamA ? { protectedNamespaces: ['team-a'] } : {}), guards: { maxAlertAgeSeconds: 86400 }, rules });
}

async function cluster(): Promise<FakeKube> {
  const fake = await new FakeKube().start();
  for (const ns of namespaces) {
    fake.addNamespace(ns, ns === 'quiet' ? { 'falco-drop/ignore': 'true' } : {});
    for (const name of pods) {
      const pod = fake.addPod(makePod(ns, name, `uid-${ns}-${name}`));
      if (name === 'optout') pod.metadata.labels = { ...pod.metadata.labels, 'falco-drop/ignore': 'true' };
    }
  }
  return fake;
}

t.test('whatever the policy and the alert, nothing is written to a protected namespace or an opted-out pod', async (t) => {
  let writes = 0;
  await fc.assert(
    fc.asyncProperty(policy, alert, async (p, a) => {
      const fake = await cluster();
      const drop = await createTestApp({ fake, policyYaml: policyYaml(p), ownNamespace: 'falco-drop' });
      try {
        const body = falcoPayload({ rule: a.rule, priority: a.priority, fields: { 'k8s.ns.name': a.namespace, 'k8s.pod.name': a.pod } });
        const res = await drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('p-1')), payload: body });
        if (![200, 202, 422].includes(res.statusCode)) throw new Error(`unexpected ${res.statusCode}: ${res.body}`);
        for (const request of fake.mutations()) {
          writes++;
          // drop's own state (claims, budget) lives in its own namespace, the one place it writes there.
          if (fake.stateRequests.includes(request)) {
            if (!request.path.startsWith('/apis/coordination.k8s.io/v1/namespaces/falco-drop/leases')) throw new Error(`state written outside drop's namespace: ${request.path}`);
            continue;
          }
          const ns = /\/namespaces\/([^/]+)/.exec(request.path)?.[1] as string;
          const text = `${request.path} ${JSON.stringify(request.body)}`;
          if (floor.has(ns) || (p.protectTeamA && ns === 'team-a')) throw new Error(`wrote to protected namespace ${ns}: ${request.method} ${request.path}`);
          if (text.includes('optout')) throw new Error(`wrote to an opted-out pod: ${request.method} ${request.path}`);
        }
      } finally {
        await drop.close();
        await fake.stop();
      }
    }),
    { numRuns: 120 },
  );
  t.ok(writes > 0, `the property saw ${writes} writes, so it tested something`);
});

t.test('one alert delivered many times, some at once, makes at most one response', async (t) => {
  let responses = 0;
  await fc.assert(
    fc.asyncProperty(policy, alert, fc.integer({ min: 2, max: 6 }), fc.integer({ min: 1, max: 3 }), async (p, a, copies, concurrent) => {
      const fake = await cluster();
      const drop = await createTestApp({ fake, policyYaml: policyYaml(p), ownNamespace: 'falco-drop' });
      try {
        const body = falcoPayload({ rule: a.rule, priority: a.priority, fields: { 'k8s.ns.name': a.namespace, 'k8s.pod.name': a.pod } });
        const send = () => drop.app.inject({ method: 'POST', url: '/', headers: lower(brokerHeaders('same-id')), payload: body });
        const answers = await Promise.all(Array.from({ length: concurrent }, send));
        for (let i = concurrent; i < copies; i++) answers.push(await send());
        const decided = drop.logs.filter((l) => l.decision !== undefined && l.replayed === false);
        if (decided.length !== 1) throw new Error(`decided ${decided.length} times`);
        if (new Set(answers.map((r) => `${r.statusCode} ${r.body}`)).size !== 1) throw new Error('copies got different answers');
        if (decided[0]?.decision === 'act') responses++;
      } finally {
        await drop.close();
        await fake.stop();
      }
    }),
    { numRuns: 80 },
  );
  t.ok(responses > 0, `${responses} runs acted, so redelivery of real responses was exercised`);
});
