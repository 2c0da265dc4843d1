// The production install: pack the project as npm publishes it, install the tarball with
// production dependencies only, start the installed service and get an answer. Catches anything
// needed at runtime that only a devDependency (or the working tree) provides.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { root, tempDir } from './run-release.ts';

// npm install from the registry, on 2 CI cores: give it minutes, not tap's default 30 s.
t.setTimeout(300_000);

/** npm with the environment of a user's shell, not that of the `npm test` running us. */
function npm(args: string[], cwd: string): string {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(lifecycle|package)_/.test(k)));
  const result = spawnSync('npm', args, { cwd, env: { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

t.test('the packed package installs with production dependencies only, starts, answers /healthz and stops on SIGTERM', async (t) => {
  // Pack a copy of the sources, so `prepare` builds into the copy and never rewrites the dist/
  // that other tests are running at the same time.
  const project = tempDir('pack');
  for (const path of ['package.json', 'package-lock.json', 'README.md', 'hack/build.mjs', 'src']) cpSync(join(root, path), join(project, path), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(project, 'node_modules'), 'dir');
  const packed = tempDir('tarball');
  npm(['pack', '--pack-destination', packed], project);
  const [tarball] = readdirSync(packed).filter((f) => f.endsWith('.tgz'));
  t.match(tarball, /^falco-drop-.*\.tgz$/);

  const app = tempDir('app');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'production-install', private: true }));
  npm(['install', '--omit=dev', '--no-package-lock', join(packed, tarball as string)], app);
  const installed = join(app, 'node_modules', 'falco-drop');
  t.ok(existsSync(join(installed, 'dist', 'main.js')), 'the tarball carries the built dist/');
  for (const dev of ['esbuild', 'tap', 'typescript', 'kubernetes-models']) t.notOk(existsSync(join(app, 'node_modules', dev)), `no devDependency ${dev}`);

  const port = await freePort();
  const child = spawn(process.execPath, [join(installed, 'dist', 'main.js')], {
    cwd: app,
    env: { PATH: process.env.PATH, HOME: app, PORT: String(port), DROP_HOST: '127.0.0.1', DROP_DRY_RUN: 'true', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = once(child, 'exit');

  let status = 0;
  for (let attempt = 0; attempt < 100 && status !== 200 && child.exitCode === null; attempt++) {
    status = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status !== 200) await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(status, 200, `GET /healthz answered 200 (service output: ${output})`);
  child.kill('SIGTERM');
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  t.same({ code, signal }, { code: 0, signal: null }, 'exits 0 on SIGTERM');
});
