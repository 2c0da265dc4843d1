// No Docker engine here: the Dockerfile is checked as text for the properties the image must have.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { root } from './run-release.ts';

const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const instructions = dockerfile
  .split('\n')
  .filter((l) => l.trim() !== '' && !l.startsWith('#'))
  .map((l) => l.trim());
const stages = dockerfile.split(/^FROM /m).slice(1);
const runtime = 'FROM ' + (stages.at(-1) ?? '');

t.test('the runtime stage is Node 24 LTS on distroless, non-root, started by node itself', async (t) => {
  t.ok(stages.length >= 2, 'multi-stage');
  t.match(runtime, /^FROM gcr\.io\/distroless\/nodejs24-debian\d+:nonroot\n/, 'Node 24 LTS, no shell or package manager');
  t.match(runtime, /^USER 65532:65532$/m, 'non-root, numerically (runAsNonRoot can check it)');
  t.match(runtime, /^CMD \[(?:"--[a-z-]+=[\w.]+", )*"dist\/main\.js"\]$/m, 'exec form: node (the entrypoint) is PID 1 and gets SIGTERM');
  t.notMatch(runtime, /node_modules|npm /, 'no node_modules and no npm in the image: the bundle is self-contained');
  t.match(runtime, /^COPY --from=build \/src\/dist\/ dist\/$/m);
});

t.test('the build stage installs the locked dependencies and bundles with the project script', async (t) => {
  t.match(stages[0], /^--platform=\$BUILDPLATFORM docker\.io\/library\/node:24[\w.-]* AS build\n/);
  t.ok(instructions.some((l) => /^RUN .*npm ci\b/.test(l)), 'npm ci (runs prepare: node hack/build.mjs)');
});

t.test('.dockerignore lets in exactly what the build copies, and each exists', async (t) => {
  const allowed = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1).replace(/\/$/, ''));
  const copied = instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from')).flatMap((l) => l.split(/\s+/).slice(1, -1).map((p) => p.replace(/\/$/, '')));
  t.same(new Set(copied), new Set(allowed));
  for (const path of allowed) t.ok(existsSync(join(root, path)), `${path} exists`);
});
