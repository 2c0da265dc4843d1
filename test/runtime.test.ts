// The runtime the image ships is the runtime that is tested (issue 7 §1), and the image and
// `npm start` start node the same way, with the V8 heap sized to the container's memory limit.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

const root = new URL('..', import.meta.url).pathname;
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  scripts: Record<string, string>;
  devDependencies: Record<string, string>;
};
const runtimeFrom = [...dockerfile.matchAll(/^FROM (\S+)/gm)].at(-1)?.[1] ?? '';
const imageMajor = Number(/distroless\/nodejs(\d+)-/.exec(runtimeFrom)?.[1]);

t.test('the tests run on the Node major the image ships', async (t) => {
  t.ok(imageMajor >= 24, `the image's runtime is ${runtimeFrom}`);
  t.equal(Number(process.versions.node.split('.')[0]), imageMajor, `this test process runs Node ${process.version} (${process.execPath})`);
  // What the processes the tests start run on: tap's test processes and the service under test
  // are started with process.execPath, `npm start` through PATH (node_modules/.bin first).
  const child = spawnSync('node', ['-p', 'process.version'], { encoding: 'utf8' });
  t.equal(child.stdout.trim(), process.version, '`node` on PATH is the same Node');
});

t.test('package.json pins that major: the node devDependency, engines, @types/node', async (t) => {
  t.match(pkg.devDependencies.node, /^\d+\.\d+\.\d+$/, 'the node binary is pinned exactly');
  t.equal(Number(pkg.devDependencies.node?.split('.')[0]), imageMajor);
  t.equal(pkg.engines.node, `>=${imageMajor}`);
  t.match(pkg.devDependencies['@types/node'], new RegExp(`^\\^${imageMajor}\\.`));
  t.match(dockerfile, new RegExp(`^FROM --platform=\\$BUILDPLATFORM docker\\.io/library/node:${imageMajor}-`, 'm'), 'the build stage');
  t.match(readFileSync(join(root, 'hack', 'build.mjs'), 'utf8'), new RegExp(`target: 'node${imageMajor}'`), 'esbuild targets it');
});

/** The node flags of the image's CMD (its entrypoint is node) and of `npm start`. */
function startFlags(): { image: string[]; npm: string[] } {
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
  const npm = /^node ((?:--\S+ )*)dist\/main\.js$/.exec(pkg.scripts.start ?? '');
  return { image: cmd.slice(0, -1), npm: npm?.[1]?.trim().split(' ').filter(Boolean) ?? ['npm start is not node … dist/main.js'] };
}

t.test('the image and npm start run the same node command, the heap sized to half the memory limit', async (t) => {
  const { image, npm } = startFlags();
  t.equal(JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]').at(-1), 'dist/main.js');
  t.same(npm, image, 'the same flags');
  // The old space follows the limit; the young generation is pinned small (4 MiB semi-spaces):
  // left to V8 it is sized from the machine and took 100 MB more under the bench's flood.
  t.same(image, ['--max-old-space-size-percentage=50', '--max-semi-space-size=4']);
});

t.test('with those flags, V8 sizes the old space to the share of the memory Node finds constrained', async (t) => {
  // Node takes the percentage of uv_get_constrained_memory() (the cgroup limit: the container's
  // memory limit in a pod) and of the machine's memory only when nothing constrains the process.
  const { image } = startFlags();
  const probe =
    'const v8=require("node:v8"),os=require("node:os");' +
    'const c=process.constrainedMemory(),limit=c>0&&c<2**63?c:os.totalmem();' +
    'console.log(JSON.stringify({limit,heap:v8.getHeapStatistics().heap_size_limit}))';
  const child = spawn(process.execPath, [...image, '-e', probe], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((resolve) => child.on('close', resolve));
  const { limit, heap } = JSON.parse(out) as { limit: number; heap: number };
  const percentage = Number(/^--max-old-space-size-percentage=(\d+)$/.exec(image[0] ?? '')?.[1]);
  // heap_size_limit is the old space plus the young generation (tens of MB at most).
  t.ok(heap >= (limit * percentage) / 100 && heap <= (limit * (percentage + 5)) / 100 + 256 * 2 ** 20, `heap limit ${Math.round(heap / 2 ** 20)} MiB for ${percentage} % of ${Math.round(limit / 2 ** 20)} MiB`);
});
