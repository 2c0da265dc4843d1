// The acting path (issue 10): what one response costs in API calls and in time, per action,
// against the fake API server (test/helpers/fake-kube.ts) on loopback. Starts the built service
// (dist/main.js, the start command's flags) pointed at a FakeKube in this process, so the
// client's send times and the fake's receive times are on one clock (performance.now()).
// Sends alerts one at a time over one keep-alive connection, each about a fresh pod added to the
// fake beforehand, with a fresh alert time, the actions in turn (delete, label, evict, isolate),
// after one warm-up response each (a replica's first response also reads the budget's Lease).
//
//   npm run build && npx node --import @tapjs/typescript/import hack/bench-acting.ts
//   (or BENCH_ONLY=acting npm run bench; BENCH_ACTING_ALERTS sets the responses per action, 50)
//
// For each action it prints the API calls per response (verb + resource), and the median and
// p95 from the alert sent to: the state store's first write (the claim's create or the budget's
// update, sent at once), the claim's create, the action's own request (its first; for isolate
// also its last, the label that makes the NetworkPolicy select the pod), the answer received,
// and the outcome recorded on the claim (PUT, written after the answer). The next alert is sent
// once the previous response's Event and record have arrived, so each response's calls are
// told apart. "Without the state store" is computed from the same run: the calls that are not
// Leases, and the time to the first Lease call (the action would be sent about then without the
// state store): an estimate, so labelled.
//
// Then a flood about one pod (BENCH_ACTING_FLOOD deliveries, default 10,000; 0 skips it): half
// of them new events (a new CloudEvent id and alert), half copies of one of the last 100 events
// (the same bytes), from 32 keep-alive connections; it prints the answers, the API calls by verb
// and resource, and the DELETEs of the pod (it fails unless there is exactly one).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimName } from '../src/state/claims.ts';
import { FakeKube, makePod, type RecordedRequest } from '../test/helpers/fake-kube.ts';

const perAction = Number(process.env.BENCH_ACTING_ALERTS ?? 50);
const floodCount = Number(process.env.BENCH_ACTING_FLOOD ?? 10_000);
const namespace = 'bench';
const actions = [
  { name: 'delete', yaml: '[{ action: delete }]', own: (r: RecordedRequest) => r.method === 'DELETE' && /\/pods\/[^/]+$/.test(r.path) },
  { name: 'label', yaml: '[{ action: label, parameters: { labels: { falco-drop/suspicious: "true" } } }]', own: (r: RecordedRequest) => r.method === 'PATCH' && /\/pods\/[^/]+$/.test(r.path) },
  { name: 'evict', yaml: '[{ action: evict }]', own: (r: RecordedRequest) => r.method === 'POST' && r.path.endsWith('/eviction') },
  {
    name: 'isolate',
    yaml: '[{ action: isolate, parameters: { allowEgress: [{ cidr: 10.96.0.10/32, ports: [{ port: 53, protocol: UDP }] }] } }]',
    own: (r: RecordedRequest) => (r.path.includes('/networkpolicies') && r.method !== 'GET') || (r.method === 'PATCH' && /\/pods\/[^/]+$/.test(r.path)),
  },
] as const;
const destructive = 3; // delete, evict, isolate
const budget = Math.min(600, destructive * (perAction + 1) + 10);
const claimOf = (action: string, uid: string) => claimName(`bench-${action}`, uid);
if (destructive * (perAction + 1) > 600) throw new Error(`BENCH_ACTING_ALERTS=${perAction}: more destructive actions than a minute's budget can hold (600)`);

const policy = `guards:
  destructivePerMinute: ${budget}
rules:
${actions.map((a) => `  - name: bench-${a.name}\n    match: { rules: ["Bench ${a.name}"] }\n    actions: ${a.yaml}\n`).join('')}`;

// The start command's flags as they resolve in the shipped pod (as hack/bench.mjs does).
const podLimitMiB = 256;
const startFlags = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ').filter((f) => f.startsWith('--'));
const podFlags = startFlags.map((f) => f.replace(/^--max-old-space-size-percentage=(\d+)$/, (_, p: string) => `--max-old-space-size=${Math.floor((podLimitMiB * Number(p)) / 100)}`));
const nodeOptions = process.env.BENCH_NODE_OPTIONS ?? podFlags.join(' ');

// A deleted pod stays readable, terminating, as on a real cluster for its grace period at least:
// the flood's alerts after the DELETE still find it and reach the claim.
const fake = await new FakeKube({ terminatingPods: true }).start();
fake.addNamespace(namespace);
const dir = mkdtempSync(join(tmpdir(), 'drop-bench-acting-'));
writeFileSync(join(dir, 'config'), fake.kubeConfigYaml());
writeFileSync(join(dir, 'policy.yaml'), policy);

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
}

const port = await freePort();
const child: ChildProcess = spawn(process.execPath, ['dist/main.js'], {
  env: {
    PATH: process.env.PATH, HOME: dir, PORT: String(port), DROP_ADMIN_PORT: '0', DROP_HOST: '127.0.0.1', LOG_LEVEL: 'warn', NODE_OPTIONS: nodeOptions,
    KUBECONFIG: join(dir, 'config'), DROP_NAMESPACE: 'falco-drop', DROP_POLICY: join(dir, 'policy.yaml'), DROP_IDENTITY: 'bench-0',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
for (;;) {
  if (child.exitCode !== null) throw new Error(`dist/main.js exited ${child.exitCode} before answering /healthz`);
  try {
    if ((await get(port, '/healthz')) === 200) break;
  } catch {
    await new Promise((r) => setTimeout(r, 5));
  }
}
if (fake.requests.length > 0) throw new Error(`the service called the API before any alert: ${fake.requests.map((r) => `${r.method} ${r.path}`).join(', ')}`);

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function post(body: string, id: string, via = agent): Promise<{ status: number; text: string; sent: number; answered: number }> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': 'https://falco.org', 'ce-type': 'falco.rule.output.v1' };
    const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers, agent: via }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), sent, answered: performance.now() }));
    });
    req.on('error', reject);
    const sent = performance.now();
    req.end(body);
  });
}

function alertBody(action: string, pod: string, uuid = `bench-${pod}`): string {
  return JSON.stringify({
    uuid, output: 'A shell was spawned', priority: 'Notice', rule: `Bench ${action}`, time: new Date().toISOString(),
    output_fields: { 'container.id': '2d90926af63e', 'k8s.ns.name': namespace, 'k8s.pod.name': pod }, source: 'syscall', tags: ['shell'], hostname: 'node-1',
  });
}

interface Sample { readonly action: string; readonly sent: number; readonly answered: number; readonly requests: RecordedRequest[] }
const samples: Sample[] = [];
const warmups: Sample[] = [];
let uid = 0;
let pending: { action: string; sent: number; answered: number; from: number; warm: boolean } | undefined;
const settle = (to: number) => {
  if (!pending) return;
  const sample = { action: pending.action, sent: pending.sent, answered: pending.answered, requests: fake.requests.slice(pending.from, to) };
  (pending.warm ? warmups : samples).push(sample);
};
/** Waits until a request after `from` satisfies `f` (what a response writes after its answer). */
async function arrival(from: number, f: (r: RecordedRequest) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!fake.requests.slice(from).some(f)) {
    if (Date.now() > deadline) throw new Error(`${what} did not arrive in 10 s`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
for (let round = -1; round < perAction; round++) {
  for (const action of actions) {
    const pod = `${action.name}-${round + 1}`;
    const podUid = `00000000-0000-4000-9000-${String(++uid).padStart(12, '0')}`;
    fake.addPod(makePod(namespace, pod, podUid));
    const from = fake.requests.length;
    settle(from); // the previous response's calls are those made before this alert was sent
    const answer = await post(alertBody(action.name, pod), `bench-${pod}`);
    if (answer.status !== 200 || !/"result":"done"/.test(answer.text)) throw new Error(`${pod}: answered ${answer.status} ${answer.text.slice(0, 300)}`);
    pending = { action: action.name, sent: answer.sent, answered: answer.answered, from, warm: round < 0 };
    // What it writes after the answer: the outcome on its claim and the Event on the pod.
    await arrival(from, (r) => r.method === 'PUT' && r.path.endsWith(`/${claimOf(action.name, podUid)}`), `${pod}: the outcome record`);
    await arrival(from, (r) => r.path.endsWith('/events') && (r.body as { regarding?: { name?: string } }).regarding?.name === pod, `${pod}: the Event`);
  }
}
await new Promise((r) => setTimeout(r, 200)); // anything else the last response does after its answer
settle(fake.requests.length);
agent.destroy();

// The flood about one pod: new events and copies, at once.
interface Flood { readonly deliveries: number; readonly newEvents: number; readonly statuses: Map<number, number>; readonly calls: RecordedRequest[]; readonly seconds: number }
let flood: Flood | undefined;
if (floodCount > 0) {
  const pod = 'flood-0';
  fake.addPod(makePod(namespace, pod, '00000000-0000-4000-9000-f100d0000000'));
  const from = fake.requests.length;
  const floodAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  // A fixed sequence (xorshift): the same flood every run.
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const events: { id: string; body: string }[] = [];
  const plan = Array.from({ length: floodCount }, (_, k) => {
    if (events.length === 0 || random() < 0.5) {
      const id = `flood-${k}`;
      events.push({ id, body: alertBody('delete', pod, `flood-uuid-${k}`) });
      return events.at(-1)!;
    }
    return events[events.length - 1 - Math.floor(random() * Math.min(100, events.length))]!;
  });
  const statuses = new Map<number, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < plan.length) {
        const delivery = plan[next++]!;
        const answer = await post(delivery.body, delivery.id, floodAgent);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // what is written after the answers
  floodAgent.destroy();
  flood = { deliveries: plan.length, newEvents: events.length, statuses, calls: fake.requests.slice(from), seconds };
}
const exited = new Promise((r) => child.on('exit', r));
child.kill('SIGTERM');
await exited;
await fake.stop();
rmSync(dir, { recursive: true, force: true });

const isLease = (r: RecordedRequest) => r.path.startsWith('/apis/coordination.k8s.io/');
const isClaim = (r: RecordedRequest) => isLease(r) && !r.path.endsWith('/drop-budget') && !(r.method === 'POST' && (r.body as { metadata?: { name?: string } }).metadata?.name === 'drop-budget');
function call(r: RecordedRequest): string {
  let m = /^\/api\/v1\/namespaces\/[^/]+\/pods\/[^/]+(\/eviction)?$/.exec(r.path);
  if (m) return `${r.method} pods${m[1] ? '/eviction' : ''}`;
  if (/^\/api\/v1\/namespaces\/[^/]+$/.test(r.path)) return `${r.method} namespaces`;
  if ((m = /^\/apis\/[^/]+\/v1\/namespaces\/[^/]+\/([a-z]+)(?:\/([^/]+))?$/.exec(r.path))) {
    if (m[1] === 'leases') return `${r.method} leases (${isClaim(r) ? 'claim' : 'budget'})`;
    return `${r.method} ${m[1]}`;
  }
  return `${r.method} ${r.path}`;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const at = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;
const fmt = (xs: number[]) => (xs.length === 0 ? 'n/a' : `${at(xs, 0.5).toFixed(2)} / ${at(xs, 0.95).toFixed(2)}`);
function callsOf(list: Sample[]): string {
  const counts = new Map<string, number>();
  for (const s of list) for (const r of s.requests) counts.set(call(r), (counts.get(call(r)) ?? 0) + 1);
  const order = (k: string) => (k.includes('leases') ? 1 : 0);
  return [...counts].sort((a, b) => order(a[0]) - order(b[0])).map(([k, n]) => `${+(n / list.length).toFixed(2)}× ${k}`).join(', ');
}
const per = (list: Sample[], f: (r: RecordedRequest) => boolean) => +(list.reduce((n, s) => n + s.requests.filter(f).length, 0) / list.length).toFixed(2);

console.log(`acting path: ${perAction} responses per action (after one warm-up each), sequential, one keep-alive connection, fake API on loopback in the client's process`);
console.log(`service flags: ${nodeOptions}`);
console.log('API calls per response (mean):');
for (const a of actions) {
  const list = samples.filter((s) => s.action === a.name);
  console.log(`  ${a.name.padEnd(8)} ${per(list, () => true)} calls, ${per(list, (r) => !isLease(r))} without Leases (the state store): ${callsOf(list)}`);
}
console.log(`  the first response at a fresh replica (warm-up, delete): ${callsOf(warmups.filter((s) => s.action === 'delete'))}`);
console.log('milliseconds from the alert sent, median / p95:');
const header = ['action', 'first call', 'first state write', 'claim create', 'action request', 'action last request', 'answer', 'outcome PUT claim', 'action w/o Leases (est.)'];
const rows: string[][] = [];
for (const a of actions) {
  const list = samples.filter((s) => s.action === a.name);
  const since = (f: (r: RecordedRequest) => boolean, which: 'first' | 'last' = 'first') =>
    list.flatMap((s) => {
      const found = which === 'first' ? s.requests.find(f) : [...s.requests].reverse().find(f);
      return found ? [found.at - s.sent] : [];
    });
  const isStateWrite = (r: RecordedRequest) => isLease(r) && r.method !== 'GET';
  rows.push([
    a.name,
    fmt(since(() => true)),
    fmt(since(isStateWrite)),
    fmt(since((r) => isClaim(r) && r.method === 'POST')),
    fmt(since(a.own)),
    fmt(since(a.own, 'last')),
    fmt(list.map((s) => s.answered - s.sent)),
    fmt(since((r) => isClaim(r) && r.method === 'PUT', 'last')),
    fmt(since(isLease)),
  ]);
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
for (const row of [header, ...rows]) console.log(`  ${row.map((c, i) => c.padEnd(widths[i] as number)).join('  ')}`);

// Where the time goes: each call's arrival to the next arrival (or to the answer, for the last
// call before it), i.e. its round trip plus drop's work until the next call.
const gaps = new Map<string, number[]>();
for (const s of samples) {
  s.requests.forEach((r, k) => {
    const next = s.requests[k + 1]?.at ?? s.answered;
    if (next < r.at) return; // a call after the answer (the Event, the outcome record)
    gaps.set(call(r), [...(gaps.get(call(r)) ?? []), next - r.at]);
  });
}
console.log("milliseconds from a call's arrival to the next call (or the answer), median / p95, all actions:");
for (const [k, xs] of [...gaps].sort((a, b) => at(b[1], 0.5) - at(a[1], 0.5))) console.log(`  ${k.padEnd(26)} ${fmt(xs)}  (${xs.length})`);

if (flood) {
  const statuses = [...flood.statuses].sort((a, b) => a[0] - b[0]).map(([code, n]) => `${n}× ${code}`).join(', ');
  console.log(`flood about one pod: ${flood.deliveries} deliveries (${flood.newEvents} events, the rest copies) from 32 keep-alive connections in ${flood.seconds.toFixed(1)} s; answers: ${statuses}`);
  const counts = new Map<string, number>();
  for (const r of flood.calls) counts.set(call(r), (counts.get(call(r)) ?? 0) + 1);
  console.log(`  API calls: ${flood.calls.length} in all: ${[...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`).join(', ')}`);
  const deletes = flood.calls.filter((r) => r.method === 'DELETE' && /\/pods\/flood-0$/.test(r.path)).length;
  console.log(`  DELETEs of the pod: ${deletes}`);
  if (deletes !== 1) throw new Error(`the flood deleted the pod ${deletes} times, not once`);
}
