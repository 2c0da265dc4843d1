// npm run bench: figures and ratios against baselines run in the same process tree.
//  1. Cold start (spawn → first 200 from /healthz), the shipped bundle vs a baseline build of
//     the same code that loads its dependencies from node_modules, as an unbundled service would.
//  2. Latency of POST / for a Falco alert in dry-run (binary mode, sequential, keep-alive) vs
//     GET /healthz on the same server: what drop's own work costs over Fastify's floor.
//  3. Resident memory after startup and after the alerts.
//  4. Flood: peak resident memory (VmHWM) under hostile requests, and under ignored alerts, each
//     on a fresh service at 64 concurrent keep-alive connections. The pod's limit is 256 Mi;
//     the target is a peak under 200 MB.
// It only talks to 127.0.0.1 and stops by itself. Absolute times depend on the machine; compare
// the ratios. 5. The acting path (hack/bench-acting.ts): API calls and times per action
// against the fake API server, about 20 s. BENCH_ONLY=acting runs only it, BENCH_ONLY=flood
// only the flood (and then the acting path is skipped); BENCH_HOSTILE (default 2,000: what is
// kept is bounded, so the peak follows the concurrency, not the count; the issue's figure is
// BENCH_HOSTILE=20000, tens of minutes on 2 shared cores), BENCH_IGNORED (100,000) and
// BENCH_CONNECTIONS (64) set its counts; BENCH_NODE_OPTIONS passes Node flags to the service.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

const runs = Number(process.env.BENCH_STARTS ?? 7);
const requests = Number(process.env.BENCH_REQUESTS ?? 2000);
const only = process.env.BENCH_ONLY;
const hostileCount = Number(process.env.BENCH_HOSTILE ?? 2000);
const ignoredCount = Number(process.env.BENCH_IGNORED ?? 100_000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const baselineDir = mkdtempSync(join(tmpdir(), 'drop-bench-'));

// The baseline: drop's own code bundled, its dependencies left to node_modules. An ESM file
// resolves bare imports from its own location, so it is written beside node_modules.
const baseline = join(process.cwd(), `.bench-baseline-${process.pid}.mjs`);
await build({ entryPoints: ['src/main.ts'], outfile: baseline, bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node24', logLevel: 'warning' });

const env = { PATH: process.env.PATH, HOME: baselineDir, PORT: '0', DROP_ADMIN_PORT: '0', DROP_HOST: '127.0.0.1', LOG_LEVEL: 'warn', DROP_DRY_RUN: 'true' };
// Node flags for the service under test: those of the start command (package.json, the same as
// the image's), with the old space resolved as in the shipped pod. The command takes a share of
// the container's memory limit (256 Mi in config/); here, where nothing limits the process, that
// would be a share of the machine's RAM, so the share of 256 Mi is given outright.
// BENCH_NODE_OPTIONS replaces them, e.g. BENCH_NODE_OPTIONS=--max-old-space-size=64.
const podLimitMiB = 256;
const startFlags = JSON.parse(readFileSync('package.json', 'utf8')).scripts.start.split(' ').filter((f) => f.startsWith('--'));
const podFlags = startFlags.map((f) => f.replace(/^--max-old-space-size-percentage=(\d+)$/, (_, p) => `--max-old-space-size=${Math.floor((podLimitMiB * Number(p)) / 100)}`));
env.NODE_OPTIONS = process.env.BENCH_NODE_OPTIONS ?? podFlags.join(' ');
console.log(`service flags: ${env.NODE_OPTIONS}`);

function get(port, path, agent) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
}

function post(port, body, headers, agent) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A port the OS reports free on 127.0.0.1 (a random pick could collide and fail the start). */
async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

/** Starts a service file and resolves once /healthz answers 200. */
async function start(file) {
  const port = await freePort();
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [file], { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
  for (;;) {
    // A service that dies at startup would otherwise be polled forever.
    if (child.exitCode !== null) throw new Error(`${file} exited ${child.exitCode} before answering /healthz`);
    try {
      if ((await get(port, '/healthz')) === 200) break;
    } catch {
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  return { child, port, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

async function stop(child) {
  const exited = new Promise((r) => child.on('exit', r));
  child.kill('SIGTERM');
  await exited;
}

function rssKb(pid) {
  return new Promise((resolve) => {
    const ps = spawn('ps', ['-o', 'rss=', '-p', String(pid)]);
    let out = '';
    ps.stdout.on('data', (c) => (out += c));
    ps.on('exit', () => resolve(Number(out.trim())));
  });
}

/** VmHWM (peak resident) and VmRSS of a process, in KiB, from /proc/<pid>/status. */
function memoryKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { peak: field('VmHWM'), rss: field('VmRSS') };
}

const mb = (kb) => `${(kb / 1024).toFixed(0)} MiB`;

function ceHeaders(id, extra = {}) {
  return { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': id, 'ce-source': 'https://falco.org', 'ce-type': 'falco.rule.output.v1', ...extra };
}

function falcoAlert({ rule = 'Terminal shell in container', output = 'A shell was spawned', pod = 'web-0', time = new Date().toISOString() } = {}) {
  return `{"uuid":"bench","output":${JSON.stringify(output)},"priority":"Notice","rule":${JSON.stringify(rule)},"time":"${time}",` +
    `"output_fields":{"container.id":"2d90926af63e","evt.time":1749720067118402960,"k8s.ns.name":"default","k8s.pod.name":"${pod}"},"source":"syscall","tags":["shell"],"hostname":"node-1"}`;
}

/**
 * What an attacker who can reach drop sends: each kind built once, varied per request by its
 * CloudEvent id (so every request is a new delivery to remember), cycled in turn.
 */
function hostileKinds() {
  const mib = 1024 * 1024;
  const nearMiB = (overhead) => 'x'.repeat(mib - overhead - 1024);
  const bigAlert = Buffer.from(falcoAlert({ output: nearMiB(400) }));
  const bigRule = Buffer.from(falcoAlert({ rule: 'R'.repeat(900 * 1024) }));
  const depth = 400_000;
  const deep = Buffer.from(`{"rule":"r","priority":"Notice","output_fields":${'['.repeat(depth)}${']'.repeat(depth)}}`);
  const invalid = Buffer.from(`{"rule":"${'a'.repeat(mib - 2048)}`);
  const tooLarge = Buffer.from(falcoAlert({ output: 'x'.repeat(mib + 1024) }));
  const members = Array.from({ length: 1000 }, (_, i) =>
    `{"specversion":"1.0","id":"@@-${i}","source":"https://falco.org","type":"falco.rule.output.v1","datacontenttype":"application/json","data":${falcoAlert({ pod: `batch-${i % 50}` })}}`);
  const batch = `[${members.join(',')}]`;
  const structuredBigId = (id) => `{"specversion":"1.0","id":"${id}${'I'.repeat(512 * 1024)}","source":"https://falco.org","type":"falco.rule.output.v1","data":${falcoAlert()}}`;
  const plainBig = (id) => falcoAlert({ rule: `Unknown ${id}`, output: nearMiB(400) });
  return [
    { name: 'alert with a near-1-MiB output', request: (id) => ({ headers: ceHeaders(id), body: bigAlert }) },
    { name: 'alert with a 900 KB rule name', request: (id) => ({ headers: ceHeaders(id), body: bigRule }) },
    { name: `JSON nested ${depth} deep`, request: (id) => ({ headers: ceHeaders(id), body: deep }) },
    { name: 'invalid JSON, near 1 MiB', request: (id) => ({ headers: ceHeaders(id), body: invalid }) },
    // Answers that close the connection go over a connection of their own.
    { name: 'a body over 1 MiB', request: (id) => ({ headers: ceHeaders(id), body: tooLarge, own: true }) },
    { name: '32 KB of headers', request: (id) => ({ headers: ceHeaders(id, { 'x-junk': 'j'.repeat(32 * 1024) }), body: Buffer.from(falcoAlert()), own: true }) },
    { name: 'a batch of 1,000 alerts', request: (id) => ({ headers: { 'content-type': 'application/cloudevents-batch+json' }, body: Buffer.from(batch.replaceAll('@@', id)) }) },
    { name: 'structured event with a 512 KB id', request: (id) => ({ headers: { 'content-type': 'application/cloudevents+json' }, body: Buffer.from(structuredBigId(id)) }) },
    { name: 'plain Falco JSON near 1 MiB', request: (id) => ({ headers: { 'content-type': 'application/json' }, body: Buffer.from(plainBig(id)) }) },
  ];
}

/** Sends `count` requests from `make(i)` over `connections` keep-alive connections; counts answers. */
async function flood(port, count, make) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const statuses = new Map();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const { kind, headers, body, own } = make(i);
      let key;
      try {
        const sent = own ? { ...headers, 'content-length': body.length, connection: 'close' } : { ...headers, 'content-length': body.length };
        key = `${kind} ${await post(port, body, sent, own ? false : agent)}`;
      } catch (error) {
        key = `${kind} ${error.code ?? error.message}`;
      }
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
  return statuses;
}

/** One flood on a fresh service: its peak and final resident memory, and what it answered. */
async function floodScenario(title, count, make) {
  const s = await start('dist/main.js');
  const before = memoryKb(s.child.pid);
  const started = performance.now();
  const statuses = await flood(s.port, count, make);
  const seconds = (performance.now() - started) / 1000;
  const alive = s.child.exitCode === null && s.child.signalCode === null;
  const after = alive ? memoryKb(s.child.pid) : undefined;
  console.log(`${title}: ${count} requests at ${connections} keep-alive connections in ${seconds.toFixed(0)} s`);
  for (const [key, n] of [...statuses].sort()) console.log(`    ${String(n).padStart(7)}  ${key}`);
  if (!after) {
    console.log(`  the service DIED (exit ${s.child.exitCode}, signal ${s.child.signalCode})`);
    return;
  }
  console.log(`  RSS after startup ${mb(before.rss)}, peak ${mb(after.peak)} (VmHWM), after ${mb(after.rss)}  target: peak < 200 MB ${after.peak * 1024 < 200e6 ? 'met' : 'NOT MET'}`);
  await stop(s.child);
}

async function floods() {
  const kinds = hostileKinds();
  await floodScenario('flood of hostile requests (dry-run, no cluster)', hostileCount, (i) => {
    const kind = kinds[i % kinds.length];
    return { kind: kind.name, ...kind.request(`hostile-${i}`) };
  });
  const ignored = Buffer.from(falcoAlert({ rule: 'Write below etc' }));
  await floodScenario('flood of ignored alerts (valid, no rule matches)', ignoredCount, (i) => ({ kind: 'ignored alert', headers: ceHeaders(`ignored-${i}`), body: ignored }));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

try {
  if (only !== 'flood' && only !== 'acting') await coldStartAndLatency();
  if (only !== 'acting') await floods();
  if (only !== 'flood') await acting();
} finally {
  rmSync(baselineDir, { recursive: true, force: true });
  rmSync(baseline, { force: true });
}

/** The acting path, in a process of its own: TypeScript, to run the fake API server of test/helpers. */
async function acting() {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'hack/bench-acting.ts'], { stdio: 'inherit' });
  const [code] = await new Promise((r) => child.on('exit', (...a) => r(a)));
  if (code !== 0) throw new Error(`hack/bench-acting.ts exited ${code}`);
}

async function coldStartAndLatency() {
  // 1. Cold start, interleaved so both see the same machine load.
  const bundled = [];
  const unbundled = [];
  for (let i = 0; i < runs; i++) {
    for (const [file, into] of [['dist/main.js', bundled], [baseline, unbundled]]) {
      const s = await start(file);
      into.push(s.ms);
      await stop(s.child);
    }
  }
  console.log(`cold start to first /healthz 200 (median of ${runs}):`);
  console.log(`  bundle (dist/main.js)           ${median(bundled).toFixed(0)} ms`);
  console.log(`  baseline (deps from node_modules) ${median(unbundled).toFixed(0)} ms`);
  console.log(`  ratio bundle/baseline           ${(median(bundled) / median(unbundled)).toFixed(2)}`);

  // 2 and 3. Latency and memory on the bundle.
  const s = await start('dist/main.js');
  const rssStart = await rssKb(s.child.pid);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const time = new Date().toISOString();
  const latencies = { alert: [], health: [] };
  for (let i = 0; i < requests; i++) {
    const body = JSON.stringify({
      uuid: `bench-${i}`, output: 'A shell was spawned', priority: 'Notice', rule: 'Terminal shell in container', time,
      output_fields: { 'container.id': '2d90926af63e', 'k8s.ns.name': 'default', 'k8s.pod.name': `web-${i}` }, source: 'syscall', tags: ['shell'], hostname: 'node-1',
    }).replace('"output_fields":{', '"output_fields":{"evt.time":1749720067118402960,');
    const headers = { 'content-type': 'application/json', 'ce-specversion': '1.0', 'ce-id': `bench-${i}`, 'ce-source': 'https://falco.org', 'ce-type': 'falco.rule.output.v1' };
    let t0 = process.hrtime.bigint();
    const status = await post(s.port, body, headers, agent);
    latencies.alert.push(Number(process.hrtime.bigint() - t0) / 1e3);
    if (status !== 200) throw new Error(`POST / answered ${status}`);
    t0 = process.hrtime.bigint();
    await get(s.port, '/healthz', agent);
    latencies.health.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  const rssEnd = await rssKb(s.child.pid);
  agent.destroy();
  await stop(s.child);
  console.log(`latency over ${requests} sequential keep-alive requests (dry-run, no cluster):`);
  console.log(`  POST / alert    p50 ${pct(latencies.alert, 0.5).toFixed(0)} µs  p99 ${pct(latencies.alert, 0.99).toFixed(0)} µs`);
  console.log(`  GET /healthz    p50 ${pct(latencies.health, 0.5).toFixed(0)} µs  p99 ${pct(latencies.health, 0.99).toFixed(0)} µs`);
  console.log(`  ratio alert/healthz p50 ${(pct(latencies.alert, 0.5) / pct(latencies.health, 0.5)).toFixed(2)}`);
  console.log('resident memory of the bundle:');
  console.log(`  after startup ${(rssStart / 1024).toFixed(1)} MiB, after ${requests} alerts ${(rssEnd / 1024).toFixed(1)} MiB`);
}
