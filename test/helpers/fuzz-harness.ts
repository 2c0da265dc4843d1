/**
 * The fuzz test's target: the built service (dist/main.js) started as the image runs it, with a
 * kubeconfig pointing at a fake API server holding the pods of the request pool, and a policy
 * that deletes on a few Falco rules. `probe` sends one request and lists the properties (see
 * test/fuzz.test.ts) that its answer breaks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKube, makePod, type RecordedRequest } from './fake-kube.ts';
import { judge, type Judgement, type OracleSetup } from './fuzz-oracle.ts';
import { pool, render, type RequestSpec } from './fuzz-requests.ts';
import { describeRequest, exchange, toBytes, type WireRequest, type WireResponse } from './fuzz-wire.ts';

const root = new URL('../..', import.meta.url).pathname;

export const policyYaml = `protectedNamespaces: [monitoring]
guards:
  cooldownSeconds: 1
  destructivePerMinute: 600
rules:
  - name: kill-shells
    match:
      rules: ["Terminal shell in container"]
    actions: [{ action: delete }]
  - name: kill-etc-writers
    match:
      rules: ["Write below etc"]
      priority: ">=Warning"
    actions: [{ action: delete }]
  - name: kill-audit-exec
    match:
      rules: ["Attach/Exec Pod"]
      source: k8s_audit
    actions: [{ action: delete }]
`;

/** The same policy and guard rails, as the oracle reads them (README: Policy, guard rails). */
export const oracleSetup: OracleSetup = {
  policy: [
    { rules: ['Terminal shell in container'] },
    { rules: ['Write below etc'], minPriority: 'Warning' },
    { rules: ['Attach/Exec Pod'], source: 'k8s_audit' },
  ],
  protectedNamespaces: new Set(['kube-system', 'kube-public', 'kube-node-lease', 'knative-serving', 'knative-eventing', 'falco', 'falco-drop', 'monitoring']),
  maxAlertAgeSeconds: 900,
  maxFutureSeconds: 60,
  bodyLimit: 1024 * 1024,
};

export interface Probe {
  /** Numbered property violations ("3. …"); empty when the answer keeps every promise. */
  readonly problems: string[];
  readonly wire: WireRequest;
  readonly judgement: Judgement;
  readonly response: WireResponse | { readonly error: string };
  readonly api: RecordedRequest[];
}

export interface FuzzTarget {
  readonly fake: FakeKube;
  readonly child: ChildProcess;
  /** Renders a spec at this moment (or takes exact bytes), sends it alone, checks the answer. */
  probe(spec: RequestSpec | WireRequest): Promise<Probe>;
  /** The failure message for a probe: the properties broken, the oracle's reading, the request. */
  explain(probe: Probe): string;
  alive(): boolean;
  close(): Promise<void>;
}

/** A request on drop's state store: Leases in drop's own namespace (DROP_NAMESPACE below). */
const ownState = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/falco-drop\/leases(\/[a-z0-9-]+)?$/;

/** The pod (namespace/name) or namespace an API request concerns; undefined for anything else. */
function concerns(request: RecordedRequest): { target?: string; namespace?: string } | undefined {
  let m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/eviction)?$/.exec(request.path);
  if (m) return { target: `${m[1]}/${m[2]}` };
  m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(request.path);
  if (m) return { namespace: m[1] as string };
  m = /^\/apis\/events\.k8s\.io\/v1\/namespaces\/([^/]+)\/events$/.exec(request.path);
  if (m) {
    const regarding = (request.body as { regarding?: { namespace?: string; name?: string } } | undefined)?.regarding;
    return { target: `${regarding?.namespace ?? m[1]}/${regarding?.name}` };
  }
  return undefined;
}

function isCloudEvent(response: WireResponse): boolean {
  const h = response.headers;
  if (['ce-specversion', 'ce-id', 'ce-source', 'ce-type'].every((name) => (h[name] ?? '') !== '')) return true;
  if (!/^application\/cloudevents\+json/i.test(h['content-type'] ?? '')) return false;
  try {
    const event = JSON.parse(response.body.toString('utf8')) as Record<string, unknown>;
    return ['specversion', 'id', 'source', 'type'].every((name) => typeof event[name] === 'string' && event[name] !== '');
  } catch {
    return false;
  }
}

export async function startFuzzTarget(): Promise<FuzzTarget> {
  const fake = await new FakeKube().start();
  for (const ns of new Set(pool.map((p) => p.ns))) fake.addNamespace(ns);
  const dir = mkdtempSync(join(tmpdir(), 'drop-fuzz-'));
  writeFileSync(join(dir, 'config'), fake.kubeConfigYaml());
  writeFileSync(join(dir, 'policy.yaml'), policyYaml);
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: dir, PORT: '0', DROP_ADMIN_PORT: '0', DROP_HOST: '127.0.0.1', KUBECONFIG: join(dir, 'config'), DROP_POLICY: join(dir, 'policy.yaml'), DROP_NAMESPACE: 'falco-drop' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      const found = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(buffered);
      if (found) {
        child.stdout?.off('data', onData);
        // Keep reading the log (one line per event) so the pipe never fills.
        child.stdout?.resume();
        resolve(Number(found[1]));
      } else if (buffered.length > 100_000) buffered = buffered.slice(-1000);
    };
    child.stdout?.on('data', onData);
    child.on('exit', (code) => reject(new Error(`exited ${code} before listening: ${stderr}`)));
  });
  const alive = () => child.exitCode === null && child.signalCode === null;

  /** Puts back every pod of the pool that an earlier request deleted (same UID, same containers). */
  const restorePods = (): void => {
    for (const p of pool) {
      if (!('absent' in p) && !fake.pods.has(`${p.ns}/${p.pod}`)) fake.addPod(makePod(p.ns, p.pod, p.uid, p.cid));
    }
  };

  /** Deliveries sent so far (CloudEvent source + id, or a plain body's hash): a resend is answered from memory. */
  const sentKeys = new Set<string>();

  const violations = (judgement: Judgement, response: WireResponse | { error: string }, api: RecordedRequest[]): string[] => {
    const problems: string[] = [];
    if (!alive()) problems.push(`1. the process exited (${child.exitCode ?? child.signalCode}): ${stderr.slice(-2000)}`);
    if ('error' in response) problems.push(`2. no HTTP answer: ${response.error}`);
    else if (response.status >= 500) problems.push(`2. answered ${response.status}: ${response.body.toString('utf8').slice(0, 500)}`);
    for (const request of api) {
      // drop's own state (its claims and budget, Leases in its own namespace): only on the way
      // to acting on a pod the input allows, and never anywhere else.
      if (ownState.test(request.path)) {
        if (judgement.allowed.size === 0) problems.push(`3. ${request.method} ${request.path}: a claim or the budget, for an input that allows acting on no pod`);
        continue;
      }
      const about = concerns(request);
      const ok =
        about?.target !== undefined
          ? judgement.allowed.has(about.target)
          : about?.namespace !== undefined && [...judgement.allowed].some((a) => a.startsWith(`${about.namespace}/`));
      if (!ok) problems.push(`3. ${request.method} ${request.path} reached the API, but the input allows only [${[...judgement.allowed].join(', ')}]`);
    }
    if (!('error' in response) && response.status >= 200 && response.status < 300 && response.body.length > 0 && !isCloudEvent(response)) {
      problems.push(`4. a ${response.status} with a body that is not a CloudEvent: ${JSON.stringify(response.headers)} ${response.body.toString('utf8').slice(0, 300)}`);
    }
    const status = 'error' in response ? 0 : response.status;
    // Not lost: retried (no answer, 404, 408, 409, 429, 5xx), or a batch dead-lettered whole (its other members may be invalid).
    const retried = status === 0 || [404, 408, 409, 429].includes(status) || status >= 500;
    for (const { target, key, inBatch } of judgement.mustRead) {
      if (sentKeys.has(key) || retried || (inBatch && status >= 400)) continue;
      const [ns, pod] = target.split('/');
      if (!api.some((r) => r.method === 'GET' && r.path === `/api/v1/namespaces/${ns}/pods/${pod}`)) {
        const answer = 'error' in response ? response.error : `${response.status} ${response.body.toString('utf8').slice(0, 300)}`;
        problems.push(`5. a valid, fresh, matching alert about ${target} never reached the API (answered ${answer})`);
      }
    }
    if (judgement.invalidFalcoEvent !== undefined && !('error' in response) && response.status >= 200 && response.status < 300) {
      problems.push(`6. answered ${response.status} to an invalid Falco event (${judgement.invalidFalcoEvent}): the alert is lost instead of dead-lettered`);
    }
    return problems;
  };

  let seq = 0;
  return {
    fake,
    child,
    alive,
    async probe(spec) {
      restorePods();
      const now = Date.now();
      const wire = 'mode' in spec ? render(spec, now, ++seq) : spec;
      const judgement = judge(wire, now, oracleSetup);
      const before = fake.requests.length;
      const response = await exchange(port, toBytes(wire), 30_000);
      // A response that called the API writes its Events and outcome records after its answer
      // (src/background.ts): they are this request's, so they are waited for (the API quiet for
      // 100 ms) before the next request, whose calls they would otherwise seem to be.
      if (fake.requests.length > before) await quiet(() => fake.requests.length, 100);
      const api = fake.requests.slice(before);
      const problems = violations(judgement, response, api);
      for (const key of judgement.keys) sentKeys.add(key);
      return { problems, wire, judgement, response, api };
    },
    explain(probe) {
      return `${probe.problems.join('\n')}\noracle: ${probe.judgement.notes.join('; ')}\nrequest:\n${describeRequest(probe.wire)}`;
    },
    async close() {
      if (alive()) child.kill('SIGKILL');
      await fake.stop();
    },
  };
}

/** Resolves once `count` has not changed for `ms` (at most 10 s: a write that never stops is the oracle's to see). */
async function quiet(count: () => number, ms: number): Promise<void> {
  const until = Date.now() + 10_000;
  let last = count();
  let since = Date.now();
  while (Date.now() - since < ms && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    if (count() !== last) {
      last = count();
      since = Date.now();
    }
  }
}
