// npm run bench: figures and ratios against baselines run in the same process tree.
//  1. Cold start (spawn → first 200 from /healthz), the shipped bundle vs a baseline build of
//     the same code that loads its dependencies from node_modules, as an unbundled service would.
//  2. Latency of POST / for a Falco alert in dry-run (binary mode, sequential, keep-alive) vs
//     GET /healthz on the same server: what drop's own work costs over Fastify's floor.
//  3. Resident memory after startup and after the alerts.
// It only talks to 127.0.0.1 and stops by itself. Absolute times depend on the machine; compare
// the ratios.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

const runs = Number(process.env.BENCH_STARTS ?? 7);
const requests = Number(process.env.BENCH_REQUESTS ?? 2000);
const baselineDir = mkdtempSync(join(tmpdir(), 'drop-bench-'));

// The baseline: drop's own code bundled, its dependencies left to node_modules. An ESM file
// resolves bare imports from its own location, so it is written beside node_modules.
const baseline = join(process.cwd(), `.bench-baseline-${process.pid}.mjs`);
await build({ entryPoints: ['src/main.ts'], outfile: baseline, bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning' });

const env = { PATH: process.env.PATH, HOME: baselineDir, PORT: '0', DROP_HOST: '127.0.0.1', LOG_LEVEL: 'warn', DROP_DRY_RUN: 'true' };

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

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

try {
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
} finally {
  rmSync(baselineDir, { recursive: true, force: true });
  rmSync(baseline, { force: true });
}
