// npm run bench: drop against its baselines, in the same run, on the same Node binary, with the
// same Node flags, on loopback. Parts (BENCH_ONLY=a,b runs only those; default all):
//  throughput  Ignored alerts (a valid Falcosidekick CloudEvent no rule matches, a fresh Ce-Id
//              each) from 32 keep-alive connections (hack/bench-load.mjs) to drop, a bare
//              node:http server answering 202 (hack/bench-bare.mjs) and a sink that parses with
//              the CloudEvents SDK (hack/bench-sdk-sink.mjs), in alternating rounds: req/s and
//              p99, medians with min and max, and the ratios drop/bare and drop/SDK sink per
//              round. drop logs one line per event at info to a file, as a pod's stdout; the
//              lines are counted after its SIGTERM.
//  cold        Spawn → first 2xx to an alert, each server in turn (BENCH_STARTS rounds).
//  memory      RSS idle, then the peak (VmHWM) and RSS after BENCH_ALERTS (100,000) ignored alerts.
//  flood       Peak RSS under hostile requests, and under ignored alerts, each on a fresh service
//              at 64 concurrent keep-alive connections (BENCH_HOSTILE, BENCH_IGNORED,
//              BENCH_CONNECTIONS). The target is a peak at most 150 MB. BENCH_FLOOD_EACH=1 floods
//              with each hostile kind alone instead (BENCH_FLOOD_EACH=batch: those named so).
//  acting      The acting path (hack/bench-acting.ts): API calls and times per action against
//              the fake API server, about 20 s.
// drop runs as the image's start command, node itself with the flags of package.json's start
// script (the same as the Dockerfile's CMD), not through npm; it is in dry-run, with a
// kubeconfig (a cluster on a closed port) so the Kubernetes client is set up as in a pod.
// It only talks to 127.0.0.1 and stops by itself. Absolute figures depend on the machine and
// its load; compare the ratios within one run.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { firstAnswer, ignoredAlertRequest, load } from './bench-load.mjs';

const parts = new Set((process.env.BENCH_ONLY ?? 'throughput,cold,memory,flood,acting').split(','));
const runs = Number(process.env.BENCH_STARTS ?? 7);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const roundSeconds = Number(process.env.BENCH_SECONDS ?? 5);
const loadConnections = Number(process.env.BENCH_LOAD_CONNECTIONS ?? 32);
const alertCount = Number(process.env.BENCH_ALERTS ?? 100_000);
const hostileCount = Number(process.env.BENCH_HOSTILE ?? 2000);
const ignoredCount = Number(process.env.BENCH_IGNORED ?? 100_000);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 64);
const workDir = mkdtempSync(join(tmpdir(), 'drop-bench-'));

// A kubeconfig whose cluster is a closed port: drop builds its Kubernetes client as in a pod,
// and in dry-run never calls it.
const kubeconfig = join(workDir, 'kubeconfig');
writeFileSync(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{ name: bench, cluster: { server: "https://127.0.0.1:9", insecure-skip-tls-verify: true } }]
users: [{ name: bench, user: { token: bench } }]
contexts: [{ name: bench, context: { cluster: bench, user: bench, namespace: falco } }]
current-context: bench
`);
// BENCH_DROP_ENV: settings for drop as JSON, e.g. BENCH_DROP_ENV='{"DROP_REDELIVERY_MAX":"1000"}'.
const env = { PATH: process.env.PATH, HOME: workDir, DROP_HOST: '127.0.0.1', DROP_ADMIN_PORT: '0', LOG_LEVEL: 'info', DROP_DRY_RUN: 'true', KUBECONFIG: kubeconfig, ...JSON.parse(process.env.BENCH_DROP_ENV ?? '{}') };
// Node flags for every server: those of the start command (package.json, the same as the
// image's), with the old space resolved as in the shipped pod. The command takes a share of
// the container's memory limit (256 Mi in config/); here, where nothing limits the process, that
// would be a share of the machine's RAM, so the share of 256 Mi is given outright.
// BENCH_NODE_OPTIONS replaces them, e.g. BENCH_NODE_OPTIONS=--max-old-space-size=64.
const podLimitMiB = 256;
const startFlags = JSON.parse(readFileSync('package.json', 'utf8')).scripts.start.split(' ').filter((f) => f.startsWith('--'));
const podFlags = startFlags.map((f) => f.replace(/^--max-old-space-size-percentage=(\d+)$/, (_, p) => `--max-old-space-size=${Math.floor((podLimitMiB * Number(p)) / 100)}`));
const nodeFlags = process.env.BENCH_NODE_OPTIONS?.split(' ').filter(Boolean) ?? podFlags;
console.log(`node ${process.version}, flags: ${nodeFlags.join(' ')}, drop: ${process.env.BENCH_DROP ?? 'dist/main.js'}`);

const servers = {
  bare: 'hack/bench-bare.mjs',
  'SDK sink': 'hack/bench-sdk-sink.mjs',
  // BENCH_DROP: another build of drop to measure in drop's place (e.g. an older commit's).
  drop: process.env.BENCH_DROP ?? 'dist/main.js',
};
// A build is an ES module only beside a package.json that says so; without one Node finds its
// module syntax by failing to load it as CommonJS and compiles it again (9 MiB and tens of ms
// more), so an older build measured from a bare copy looks worse than it is.
if (process.env.BENCH_DROP && packageTypeOf(resolve(process.env.BENCH_DROP)) !== 'module') {
  console.log(`WARNING: no package.json with "type": "module" above ${process.env.BENCH_DROP}: Node compiles it twice; copy the project's package.json beside its dist/`);
}

/** The "type" of the package.json nearest above a file, as Node looks it up. */
function packageTypeOf(file) {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    try {
      return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).type;
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    if (dirname(dir) === dir) return undefined;
  }
}
const request = ignoredAlertRequest();
let requestNumber = 0;
const nextRequest = () => request(requestNumber++);

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

let logs = 0;
/**
 * Starts a server (a key of `servers`) as the image does, its stdout to a file as a pod's is
 * kept; resolves once it answers an alert 2xx, with the time from the spawn.
 */
async function start(name) {
  const port = await freePort();
  const log = join(workDir, `${name.replace(' ', '-')}-${logs++}.log`);
  const out = openSync(log, 'w');
  const first = nextRequest();
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeFlags, servers[name]], { env: { ...env, PORT: String(port) }, stdio: ['ignore', out, 'inherit'] });
  closeSync(out);
  const died = new Promise((_, reject) => child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before answering an alert`))));
  await Promise.race([firstAnswer(port, first), died]);
  const ms = performance.now() - started;
  died.catch(() => {});
  return { name, child, port, ms, cpuMs: cpuMs(child.pid), log, answered: 1 };
}

async function stop(server) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise((r) => server.child.once('exit', r));
  server.child.kill('SIGTERM');
  await exited;
}

/** VmHWM (peak resident) and VmRSS of a process, in KiB, from /proc/<pid>/status. */
function memoryKb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { peak: field('VmHWM'), rss: field('VmRSS') };
}

/** CPU time (user + system) a process has used, in ms (10 ms steps). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
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
  const s = await start('drop');
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
  console.log(`  RSS after startup ${mb(before.rss)}, peak ${mb(after.peak)} (VmHWM), after ${mb(after.rss)}  target: peak ≤ 150 MB ${after.peak * 1024 <= 150e6 ? 'met' : 'NOT MET'}`);
  await stop(s);
}

async function floods() {
  const kinds = hostileKinds();
  // BENCH_FLOOD_EACH=1: each hostile kind alone, on a fresh service, to find which one sets the
  // peak; BENCH_FLOOD_EACH=<text>: the kinds whose name holds it.
  if (process.env.BENCH_FLOOD_EACH) {
    for (const kind of kinds.filter((k) => k.name.includes(process.env.BENCH_FLOOD_EACH === '1' ? '' : process.env.BENCH_FLOOD_EACH))) await floodScenario(`flood of one hostile kind: ${kind.name}`, hostileCount, (i) => ({ kind: kind.name, ...kind.request(`hostile-${i}`) }));
    return;
  }
  await floodScenario('flood of hostile requests (dry-run, no cluster)', hostileCount, (i) => {
    const kind = kinds[i % kinds.length];
    return { kind: kind.name, ...kind.request(`hostile-${i}`) };
  });
  const ignored = Buffer.from(falcoAlert({ rule: 'Write below etc' }));
  await floodScenario('flood of ignored alerts (valid, no rule matches)', ignoredCount, (i) => ({ kind: 'ignored alert', headers: ceHeaders(`ignored-${i}`), body: ignored }));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** "median (min–max)" of numbers, each written by `f`. */
const spread = (xs, f = (x) => x.toFixed(0)) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
const names = Object.keys(servers);

try {
  if (parts.has('throughput')) await throughput();
  if (parts.has('cold')) await coldStart();
  if (parts.has('memory')) await memory();
  if (parts.has('flood')) await floods();
  if (parts.has('acting')) await acting();
} finally {
  rmSync(workDir, { recursive: true, force: true });
}

/** The acting path, in a process of its own: TypeScript, to run the fake API server of test/helpers. */
async function acting() {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', 'hack/bench-acting.ts'], { stdio: 'inherit' });
  const [code] = await new Promise((r) => child.on('exit', (...a) => r(a)));
  if (code !== 0) throw new Error(`hack/bench-acting.ts exited ${code}`);
}

/** Lines of a log file that are the log line of an answered event (drop's "decision" field). */
function eventLines(file) {
  const text = readFileSync(file, 'latin1');
  let n = 0;
  for (let i = text.indexOf('"decision":'); i !== -1; i = text.indexOf('"decision":', i + 1)) n++;
  return n;
}

async function throughput() {
  const running = [];
  try {
    for (const name of names) running.push(await start(name));
    // Warm-up: V8 optimises the hot paths, pools fill.
    for (const s of running) await loadOn(s, { seconds: 2 });
    const results = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < rounds; r++) {
      // Alternate the order so no server always runs after the same one.
      const order = r % 2 === 0 ? running : [...running].reverse();
      for (const s of order) {
        const result = await loadOn(s, { seconds: roundSeconds });
        if (result.errors > 0 || result.statuses.size !== 1 || !result.statuses.has(202)) {
          throw new Error(`${s.name} answered ${JSON.stringify([...result.statuses])} with ${result.errors} connection errors`);
        }
        results[s.name].push(result);
      }
    }
    console.log(`ignored alerts, ${loadConnections} keep-alive connections, ${rounds} rounds of ${roundSeconds} s each (median (min–max)):`);
    console.log(`  ${'server'.padEnd(10)} ${'req/s'.padEnd(24)} ${'p99 ms'.padEnd(20)} server CPU µs per alert`);
    for (const name of names) {
      const rs = results[name];
      console.log(`  ${name.padEnd(10)} ${spread(rs.map((x) => x.rps)).padEnd(24)} ${spread(rs.map((x) => x.p99), (x) => x.toFixed(1)).padEnd(20)} ${spread(rs.map((x) => x.cpuUs))}`);
    }
    const ratio = (a, b) => results[a].map((x, i) => x.rps / results[b][i].rps);
    console.log(`  drop/bare      ${spread(ratio('drop', 'bare'), (x) => x.toFixed(2))}  target ≥ 0.70`);
    console.log(`  drop/SDK sink  ${spread(ratio('drop', 'SDK sink'), (x) => x.toFixed(2))}  target > 1`);
    const cpuRatio = (a, b) => results[a].map((x, i) => x.cpuUs / results[b][i].cpuUs);
    console.log(`  CPU per alert, drop/bare ${spread(cpuRatio('drop', 'bare'), (x) => x.toFixed(2))}, drop/SDK sink ${spread(cpuRatio('drop', 'SDK sink'), (x) => x.toFixed(2))}`);
  } finally {
    for (const s of running) await stop(s);
  }
  // Every answered event has its line, the last ones included (written on SIGTERM).
  const drop = running.find((s) => s.name === 'drop');
  if (drop) {
    const lines = eventLines(drop.log);
    console.log(`  drop's log: ${lines} event lines for ${drop.answered} alerts answered ${lines === drop.answered ? '(one each)' : 'MISSING LINES'}`);
  }
}

/** Load on a started server, its answers counted on it. */
async function loadOn(s, options) {
  const cpuBefore = cpuMs(s.child.pid);
  const result = await load({ port: s.port, connections: loadConnections, request: nextRequest, ...options });
  s.answered += result.answered;
  // The server's CPU per answer: what the load costs it, whatever else runs on the machine.
  result.cpuUs = ((cpuMs(s.child.pid) - cpuBefore) * 1000) / result.answered;
  return result;
}

async function coldStart() {
  const times = Object.fromEntries(names.map((n) => [n, []]));
  const cpu = Object.fromEntries(names.map((n) => [n, []]));
  const rss = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < runs; i++) {
    for (const name of i % 2 === 0 ? names : [...names].reverse()) {
      const s = await start(name);
      times[name].push(s.ms);
      cpu[name].push(s.cpuMs);
      rss[name].push(memoryKb(s.child.pid).rss / 1024);
      await stop(s);
    }
  }
  console.log(`cold start: spawn → first 2xx to an alert, ${runs} starts each (median (min–max)):`);
  console.log(`  ${'server'.padEnd(10)} ${'wall ms'.padEnd(20)} ${'CPU ms'.padEnd(20)} RSS MiB then`);
  for (const name of names) console.log(`  ${name.padEnd(10)} ${spread(times[name]).padEnd(20)} ${spread(cpu[name]).padEnd(20)} ${spread(rss[name])}`);
  const ratio = (of, a, b) => median(of[a]) / median(of[b]);
  console.log(`  drop/bare      wall ${ratio(times, 'drop', 'bare').toFixed(2)} (target ≤ 1.50), CPU ${ratio(cpu, 'drop', 'bare').toFixed(2)}`);
  console.log(`  drop/SDK sink  wall ${ratio(times, 'drop', 'SDK sink').toFixed(2)}, CPU ${ratio(cpu, 'drop', 'SDK sink').toFixed(2)}`);
}

async function memory() {
  console.log(`resident memory: idle (1 s after the first answer), then ${alertCount} ignored alerts from ${loadConnections} connections:`);
  for (const name of names) {
    const s = await start(name);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = memoryKb(s.child.pid);
    const result = await loadOn(s, { count: alertCount });
    const after = memoryKb(s.child.pid);
    await stop(s);
    const target = name === 'drop' ? `  targets: idle ≤ 100 MB ${idle.rss * 1024 <= 100e6 ? 'met' : 'NOT MET'}, peak ≤ 150 MB ${after.peak * 1024 <= 150e6 ? 'met' : 'NOT MET'}` : '';
    console.log(`  ${name.padEnd(10)} idle ${mb(idle.rss)}, peak ${mb(after.peak)}, after ${mb(after.rss)} (${result.answered} answered in ${result.seconds.toFixed(1)} s)${target}`);
  }
}
