import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { fakeBin, root, runRelease, tempDir } from './run-release.ts';

const digest = 'sha256:' + '0123456789abcdef'.repeat(4);
const localId = 'sha256:' + 'c'.repeat(64);
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const configFiles = readdirSync(join(root, 'config'))
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const localPlatform = `linux/${process.arch === 'x64' ? 'amd64' : process.arch}`;

interface Doc {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: { template?: { spec?: { containers?: { image: string }[] } } };
}
const docs = (text: string): Doc[] =>
  parseAllDocuments(text)
    .filter((d) => d.contents !== null)
    .map((d) => d.toJS() as Doc);
const images = (text: string): string[] => docs(text).flatMap((d) => (d.spec?.template?.spec?.containers ?? []).map((c) => c.image));

/** An existing release file with known content: every failure must leave it byte for byte. */
function existingRelease(): { out: string; before: string } {
  const out = join(tempDir('out'), 'release.yaml');
  const before = '# the release from before\n';
  writeFileSync(out, before);
  return { out, before };
}

t.test('builds both architectures, pushes, and pins the pushed digest in every placeholder', async (t) => {
  const { out } = existingRelease();
  const run = await runRelease(['--out', out], { KO_DOCKER_REPO: 'registry.example/team/', FAKE_DOCKER_DIGEST: digest });
  t.equal(run.code, 0, run.stderr);
  t.equal(run.calls.length, 1);
  const [call] = run.calls;
  const metadataFile = call?.[call.indexOf('--metadata-file') + 1] ?? '';
  t.match(metadataFile, /falco-drop-release-[^/]+\/metadata\.json$/);
  t.same(call, [
    'docker', 'buildx', 'build',
    '--platform', 'linux/amd64,linux/arm64',
    '--tag', `registry.example/team/falco-drop:${version}`,
    '--label', `org.opencontainers.image.version=${version}`,
    '--metadata-file', metadataFile,
    '--push', '.',
  ]);
  const release = readFileSync(out, 'utf8');
  t.notMatch(release, /^\s*(- )?image: *ko:\/\//m, 'no placeholder left');
  t.notMatch(release, /sha256:c{64}/, 'never the local image id (containerimage.config.digest)');
  const drop = docs(release).find((d) => d.kind === 'Service' && d.metadata.name === 'drop');
  t.same(drop?.spec?.template?.spec?.containers?.map((c) => c.image), [`registry.example/team/falco-drop@${digest}`]);
  t.ok(images(release).includes('docker.io/falcosecurity/falcosidekick:2.34.1'), 'other images are left as they are');
  t.match(run.stderr, `release: ${out.replace(root + '/', '')} uses registry.example/team/falco-drop@${digest}`);
  t.equal(run.stdout, '', 'stdout stays clean: docker output goes to stderr');
  const standalone = readFileSync(join(out, '..', 'release-standalone.yaml'), 'utf8');
  const deployment = docs(standalone).find((d) => d.kind === 'Deployment' && d.metadata.name === 'drop');
  t.same(deployment?.spec?.template?.spec?.containers?.map((c) => c.image), [`registry.example/team/falco-drop@${digest}`], 'the release without Knative runs the same pushed digest');
  t.same(images(standalone), [`registry.example/team/falco-drop@${digest}`], 'and no other image: Falcosidekick is the user\'s own');
  t.match(run.stderr, `release: ${out.replace(root + '/', '').replace(/release\.yaml$/, 'release-standalone.yaml')} uses registry.example/team/falco-drop@${digest}`);
});

t.test('writes every top-level config file in file-name order, stamps the version, and skips subdirectories', async (t) => {
  const config = tempDir('config');
  const write = (name: string, kind: string) =>
    writeFileSync(join(config, name), `# ${name}\napiVersion: v1\nkind: ${kind}\nmetadata:\n  name: ${name.split('.')[0]}\n  labels:\n    app.kubernetes.io/version: devel\n`);
  write('300-c.yaml', 'ConfigMap');
  write('100-a.yaml', 'Namespace');
  writeFileSync(join(config, '200-b.yaml'), 'apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: b\nspec:\n  template:\n    spec:\n      containers:\n        - image: ko://falco-drop\n');
  write('notes.txt', 'Secret');
  mkdirSync(join(config, 'demo'));
  write('demo/050-demo.yaml', 'Pod');
  const out = join(tempDir('out'), 'release.yaml');
  const run = await runRelease(['--config-dir', config, '--out', out, '--version', '1.2.3'], { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_DIGEST: digest });
  t.equal(run.code, 0, run.stderr);
  const release = readFileSync(out, 'utf8');
  t.same(docs(release).map((d) => d.metadata.name), ['100-a', 'b', '300-c']);
  t.match(release, /^# falco-drop 1\.2\.3: generated from config\//);
  t.match(release, /# 100-a.yaml\n[^]*\n---\n[^]*\n---\n# 300-c.yaml\n/, 'documents joined with ---');
  t.same(docs(release).map((d) => d.metadata.labels?.['app.kubernetes.io/version']), ['1.2.3', undefined, '1.2.3']);
  t.same(images(release), [`r.example/falco-drop@${digest}`]);
  t.match(run.calls[0], ['docker', 'buildx', 'build', '--platform', 'linux/amd64,linux/arm64', '--tag', 'r.example/falco-drop:1.2.3', '--label', 'org.opencontainers.image.version=1.2.3']);
});

/** A Knative Service in falco-drop running drop's image, with the given env values. */
const knativeService = (name: string, env: Record<string, string>) =>
  `apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: falco-drop\nspec:\n  template:\n    spec:\n      containers:\n        - image: ko://falco-drop\n          env:\n` +
  Object.entries(env).map(([k, v]) => `            - name: ${k}\n              value: ${v}\n`).join('');
/** A Trigger; `subscriber` is the YAML of its spec.subscriber. */
const trigger = (name: string, namespace: string, subscriber: string) =>
  `apiVersion: eventing.knative.dev/v1\nkind: Trigger\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n  broker: default\n  subscriber:\n${subscriber}`;
const refTo = (name: string, namespace?: string) => `    ref:\n      apiVersion: serving.knative.dev/v1\n      kind: Service\n      name: ${name}\n${namespace ? `      namespace: ${namespace}\n` : ''}`;

t.test('fills DROP_ALLOWED_SENDERS with the OIDC accounts of exactly the Triggers to drop, hashed for long names', async (t) => {
  const config = tempDir('senders');
  writeFileSync(join(config, '400-drop.yaml'), knativeService('drop', { DROP_ALLOWED_SENDERS: '"knative://trigger-oidc-service-accounts"', DROP_DRY_RUN: 'knative://trigger-oidc-service-accounts-not' }));
  writeFileSync(join(config, '501-short.yaml'), trigger('drop-critical', 'falco-drop', refTo('drop')));
  writeFileSync(join(config, '502-long.yaml'), trigger('drop-terminal-shell-in-container-at-critical', 'falco-drop', refTo('drop')));
  // A Trigger elsewhere that names drop's namespace is a sender (its account is in its own namespace).
  writeFileSync(join(config, '503-elsewhere.yaml'), trigger('elsewhere', 'team-a', refTo('drop', 'falco-drop')) + '---\n' + trigger('stranger', 'team-b', refTo('drop')));
  writeFileSync(join(config, '504-not-drop.yaml'), trigger('to-sockeye', 'falco-drop', refTo('sockeye')) + '---\n' + trigger('to-uri', 'falco-drop', '    uri: http://example.com/\n') + '---\n' + trigger('to-broker', 'falco-drop', '    ref:\n      apiVersion: eventing.knative.dev/v1\n      kind: Broker\n      name: drop\n'));
  const out = join(tempDir('out'), 'release.yaml');
  const run = await runRelease(['--yaml-only', '--config-dir', config, '--out', out]);
  t.equal(run.code, 0, run.stderr);
  const drop = parseAllDocuments(readFileSync(out, 'utf8')).map((d) => d.toJS()).find((d) => d.kind === 'Service');
  const env = Object.fromEntries(drop.spec.template.spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
  t.same(env.DROP_ALLOWED_SENDERS.split(','), [
    'system:serviceaccount:falco-drop:drop-critical-oidc-eventing.knative.dev-trigger',
    // echo -n 'drop-terminal-shell-in-container-at-critical-oidc-eventing.knative.dev-Trigger' | md5sum
    'system:serviceaccount:falco-drop:drop-terminal-shell-in-containe9794c57478a5626377f18531ec298e75',
    'system:serviceaccount:team-a:elsewhere-oidc-eventing.knative.dev-trigger',
  ]);
  t.equal(env.DROP_DRY_RUN, 'knative://trigger-oidc-service-accounts-not', 'only the placeholder itself is replaced');
});

t.test('takes the version from RELEASE_VERSION when no flag gives it', async (t) => {
  const { out } = existingRelease();
  // A directory that happens to be called docker, earlier on PATH, is not docker.
  const decoy = tempDir('decoy');
  mkdirSync(join(decoy, 'docker'));
  const env = { KO_DOCKER_REPO: 'r.example', RELEASE_VERSION: '2.0.0-rc.1', FAKE_DOCKER_DIGEST: digest };
  const run = await runRelease(['--out', out], env, `${decoy}:${fakeBin}`);
  t.equal(run.code, 0, run.stderr);
  t.match(readFileSync(out, 'utf8'), /app\.kubernetes\.io\/version: "2\.0\.0-rc\.1"/);
  t.notMatch(readFileSync(out, 'utf8'), /app\.kubernetes\.io\/version: devel/);
});

t.test('--dry-run prints the docker command it would run and writes nothing', async (t) => {
  const { out, before } = existingRelease();
  const run = await runRelease(['--dry-run', '--out', out], { KO_DOCKER_REPO: 'ghcr.io/you' });
  t.equal(run.code, 0, run.stderr);
  t.equal(
    run.stdout,
    `docker buildx build --platform linux/amd64,linux/arm64 --tag ghcr.io/you/falco-drop:${version} --label org.opencontainers.image.version=${version} --metadata-file '<tmp>/metadata.json' --push .\n` +
      `# then write ${out}: ko://falco-drop -> ghcr.io/you/falco-drop@<pushed digest>, app.kubernetes.io/version "${version}"\n` +
      `# then write ${join(out, '..', 'release-standalone.yaml')}: ko://falco-drop -> ghcr.io/you/falco-drop@<pushed digest>, app.kubernetes.io/version "${version}"\n`,
  );
  t.same(run.calls, [], 'docker was not run');
  t.equal(readFileSync(out, 'utf8'), before);
});

t.test('--dry-run names the release.yaml it would write, relative to where it runs', async (t) => {
  const run = await runRelease(['--dry-run'], { KO_DOCKER_REPO: 'ghcr.io/you' });
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /\n# then write release\.yaml: [^\n]*\n# then write release-standalone\.yaml: /);
  const only = await runRelease(['--dry-run', '--standalone'], { KO_DOCKER_REPO: 'ghcr.io/you' });
  t.equal(only.code, 0, only.stderr);
  t.match(only.stdout, /\n# then write release-standalone\.yaml: [^\n]*\n$/, '--standalone: that release only, at its default name');
});

t.test('--local builds for this machine, loads the image into kind, and references it by its local tag', async (t) => {
  const out = join(tempDir('out'), 'local.yaml');
  const run = await runRelease(['--local', '--tag', 'dev1', '--out', out], { KIND_CLUSTER_NAME: 'drop' });
  t.equal(run.code, 0, run.stderr);
  t.same(run.calls, [
    ['docker', 'buildx', 'build', '--platform', localPlatform, '--tag', 'kind.local/falco-drop:dev1', '--label', `org.opencontainers.image.version=${version}`, '--load', '.'],
    ['kind', 'load', 'docker-image', 'kind.local/falco-drop:dev1', '--name', 'drop'],
  ]);
  t.ok(images(readFileSync(out, 'utf8')).includes('kind.local/falco-drop:dev1'));
});

t.test('--local writes the release to stdout by default, for kubectl apply -f -', async (t) => {
  const run = await runRelease(['--local'], {});
  t.equal(run.code, 0, run.stderr);
  t.match(run.calls[1], ['kind', 'load', 'docker-image', /^kind\.local\/falco-drop:local-\d{14}$/, '--name', 'kind']);
  const image = images(run.stdout).find((i) => i.startsWith('kind.local/'));
  t.equal(image, run.calls[1]?.[3]);
  t.match(run.stderr, 'fake docker: done', "docker's own output goes to stderr");
  t.equal(docs(run.stdout).filter((d) => d.kind === 'Deployment').length, 0, 'one release on stdout: the Knative one');
  t.equal(docs(run.stdout).filter((d) => d.kind === 'Namespace').length, 1);
});

t.test('--local --standalone writes the release without Knative to stdout, with the loaded image', async (t) => {
  const run = await runRelease(['--local', '--standalone', '--tag', 'dev2'], {});
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^# falco-drop [^\n]* without Knative: /);
  const released = docs(run.stdout);
  t.same(images(run.stdout), ['kind.local/falco-drop:dev2']);
  t.same(released.filter((d) => d.kind === 'Namespace').length, 1);
  t.notOk(released.some((d) => /knative\.dev\//.test((d as unknown as { apiVersion: string }).apiVersion)), 'no Knative object');
});

t.test('--local --dry-run prints both commands', async (t) => {
  const run = await runRelease(['--local', '--dry-run', '--tag', 'x']);
  t.equal(run.code, 0, run.stderr);
  t.equal(
    run.stdout,
    `docker buildx build --platform ${localPlatform} --tag kind.local/falco-drop:x --label org.opencontainers.image.version=${version} --load .\n` +
      'kind load docker-image kind.local/falco-drop:x --name kind\n' +
      `# then write stdout: ko://falco-drop -> kind.local/falco-drop:x, app.kubernetes.io/version "${version}"\n`,
  );
  t.same(run.calls, []);
});

t.test('--yaml-only needs no docker and uses the published tag', async (t) => {
  const out = join(tempDir('out'), 'release.yaml');
  const run = await runRelease(['--yaml-only', '--out', out], { KO_DOCKER_REPO: 'ignored.example' });
  t.equal(run.code, 0, run.stderr);
  t.same(run.calls, []);
  t.ok(images(readFileSync(out, 'utf8')).includes(`ghcr.io/falco-drop/falco-drop:${version}`));
  const dry = await runRelease(['--yaml-only', '--dry-run', '--out', out]);
  t.equal(dry.code, 0);
  t.match(dry.stdout, '# --yaml-only runs no docker command');
});

/** A config dir with a Knative file, plain files, and a standalone/ folder (what `extra` adds). */
function twoReleaseConfig(extra: Record<string, string> = {}): string {
  const config = tempDir('two');
  mkdirSync(join(config, 'standalone'));
  const plain = (kind: string, name: string) => `apiVersion: v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n  labels:\n    app.kubernetes.io/version: devel\n`;
  const files: Record<string, string> = {
    '100-namespace.yaml': plain('Namespace', 'falco-drop'),
    '300-policy.yaml': plain('ConfigMap', 'policy'),
    '400-service.yaml': knativeService('drop', {}),
    '500-broker.yaml': 'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n',
    'standalone/400-deployment.yaml': `apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: drop\n  labels:\n    app.kubernetes.io/version: devel\nspec:\n  template:\n    spec:\n      containers:\n        - image: ko://falco-drop\n`,
    'standalone/401-service.yaml': plain('Service', 'drop'),
    'standalone/notes.md': 'not a manifest\n',
    ...extra,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(config, name), text);
  return config;
}

t.test('writes release-standalone.yaml next to release.yaml: config/standalone/ and the files of config/ with no Knative object, by file name', async (t) => {
  const config = twoReleaseConfig({ '200-account.yaml': 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: drop\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n', 'standalone/150-extra.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n' });
  const dir = tempDir('out');
  const out = join(dir, 'my.yaml');
  const run = await runRelease(['--yaml-only', '--config-dir', config, '--out', out, '--version', '3.1.4']);
  t.equal(run.code, 0, run.stderr);
  t.same(readdirSync(dir).sort(), ['my-standalone.yaml', 'my.yaml'], '<name>-standalone.yaml next to --out');
  const knative = readFileSync(out, 'utf8');
  t.same(docs(knative).map((d) => `${d.kind}/${d.metadata.name}`), ['Namespace/falco-drop', 'ServiceAccount/drop', 'Secret/s', 'ConfigMap/policy', 'Service/drop', 'Broker/default'], 'release.yaml as before: config/ only');
  const standalone = readFileSync(join(dir, 'my-standalone.yaml'), 'utf8');
  t.same(
    docs(standalone).map((d) => `${d.kind}/${d.metadata.name}`),
    ['Namespace/falco-drop', 'ConfigMap/extra', 'ServiceAccount/drop', 'Secret/s', 'ConfigMap/policy', 'Deployment/drop', 'Service/drop'],
    'shared and own files interleaved by file name; the Knative Service and the Broker left out',
  );
  t.match(standalone, /^# falco-drop 3\.1\.4 without Knative: generated by hack\/release\.mjs from these files of config\/[^\n]*\n#[^\n]*\n#   100-namespace\.yaml\n#   standalone\/150-extra\.yaml\n#   200-account\.yaml\n#   300-policy\.yaml\n#   standalone\/400-deployment\.yaml\n#   standalone\/401-service\.yaml\napiVersion: v1\nkind: Namespace\n/, 'the header names every file it is made of');
  t.same(images(standalone), [`ghcr.io/falco-drop/falco-drop:3.1.4`]);
  t.same(docs(standalone).map((d) => d.metadata.labels?.['app.kubernetes.io/version']), ['3.1.4', undefined, undefined, undefined, '3.1.4', '3.1.4', '3.1.4'], 'the version stamped as in release.yaml');
  // Byte for byte, each shared file is the one release.yaml holds.
  for (const file of ['100-namespace.yaml', '200-account.yaml', '300-policy.yaml']) {
    const rendered = readFileSync(join(config, file), 'utf8').replace('app.kubernetes.io/version: devel', 'app.kubernetes.io/version: "3.1.4"');
    t.ok(knative.includes(rendered) && standalone.includes(rendered), `${file} in both`);
  }
});

t.test('--standalone writes only the release without Knative, to --out', async (t) => {
  const dir = tempDir('out');
  const out = join(dir, 'plain.yaml');
  const run = await runRelease(['--yaml-only', '--standalone', '--config-dir', twoReleaseConfig(), '--out', out]);
  t.equal(run.code, 0, run.stderr);
  t.same(readdirSync(dir), ['plain.yaml']);
  t.match(readFileSync(out, 'utf8'), /^# falco-drop [^\n]* without Knative/);
});

t.test('a config directory without standalone/ makes release.yaml alone', async (t) => {
  const config = twoReleaseConfig();
  rmSync(join(config, 'standalone'), { recursive: true });
  const dir = tempDir('out');
  const run = await runRelease(['--yaml-only', '--config-dir', config, '--out', join(dir, 'release.yaml')]);
  t.equal(run.code, 0, run.stderr);
  t.same(readdirSync(dir), ['release.yaml']);
});

t.test('--help lists the modes', async (t) => {
  const run = await runRelease(['--help']);
  t.equal(run.code, 0);
  t.match(run.stdout, /--local[^]*--yaml-only[^]*--dry-run[^]*KO_DOCKER_REPO/);
});

const failures: {
  name: string;
  args?: string[];
  env?: Record<string, string>;
  path?: string;
  config?: string;
  message: RegExp;
  code?: number;
  ran: number;
}[] = [
  { name: 'KO_DOCKER_REPO is unset', message: /^release: KO_DOCKER_REPO is not set: set it to the registry/, ran: 0 },
  {
    name: 'docker is not on PATH',
    env: { KO_DOCKER_REPO: 'r.example' },
    path: '/nonexistent',
    message: /^release: docker is not on PATH: install Docker with buildx, or run `npm run release:yaml`/,
    ran: 0,
  },
  {
    name: 'kind is not on PATH for --local',
    args: ['--local'],
    path: '__docker_only__',
    message: /^release: kind is not on PATH: install kind/,
    ran: 0,
  },
  {
    name: 'the registry refuses the push',
    env: { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_EXIT: '1', FAKE_DOCKER_STDERR: 'ERROR: failed to push r.example/falco-drop:0.1.0: denied: requested access to the resource is denied' },
    message: /^release: docker buildx build exited 1 \(its output is above\) \(release not written\)$/m,
    ran: 1,
  },
  {
    name: 'docker cannot be started',
    env: { KO_DOCKER_REPO: 'r.example' },
    path: '__broken_docker__',
    message: /^release: docker could not be started: ENOENT/,
    ran: 0,
  },
  {
    name: 'docker is killed',
    env: { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_KILLED: '1' },
    message: /^release: docker buildx build was killed by SIGKILL/,
    ran: 1,
  },
  {
    name: 'buildx writes no metadata file',
    env: { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_NO_METADATA: '1' },
    message: /^release: docker buildx wrote no readable --metadata-file \(ENOENT\): was the image pushed\?/,
    ran: 1,
  },
  {
    name: 'buildx writes metadata that is not JSON',
    env: { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_METADATA: '{"containerimage.digest": ' },
    message: /^release: docker buildx wrote no readable --metadata-file \(.*JSON.*\)/,
    ran: 1,
  },
  {
    name: 'buildx reports a malformed digest',
    env: { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_DIGEST: 'sha256:abc' },
    message: /^release: docker buildx metadata has no pushed digest \(containerimage\.digest is "sha256:abc"\)/,
    ran: 1,
  },
  {
    name: 'buildx reports no pushed digest',
    env: { KO_DOCKER_REPO: 'r.example' },
    message: /^release: docker buildx metadata has no pushed digest \(containerimage\.digest is undefined\)/,
    ran: 1,
  },
  {
    name: 'kind load fails',
    args: ['--local'],
    env: { FAKE_KIND_EXIT: '1', FAKE_KIND_STDERR: 'ERROR: no nodes found for cluster "kind"' },
    message: /^release: kind load docker-image exited 1/m,
    ran: 2,
  },
  { name: 'a config file uses another ko:// image', env: { KO_DOCKER_REPO: 'r.example', FAKE_DOCKER_DIGEST: digest }, config: 'stray', message: /^release: 200-x\.yaml: unknown image placeholder ko:\/\/other/, ran: 0 },
  { name: 'no config file names the placeholder', env: { KO_DOCKER_REPO: 'r.example' }, config: 'none', message: /^release: no file in \S+ uses the image placeholder ko:\/\/falco-drop/, ran: 0 },
  { name: 'the config directory has no YAML', env: { KO_DOCKER_REPO: 'r.example' }, config: 'empty', message: /^release: no \*\.yaml files in /, ran: 0 },
  { name: 'a config file is not YAML', env: { KO_DOCKER_REPO: 'r.example' }, config: 'broken', message: /^release: 100-a\.yaml is not valid YAML/, ran: 0 },
  { name: 'the senders placeholder has no Trigger to stand for', env: { KO_DOCKER_REPO: 'r.example' }, config: 'lonely-senders', message: /^release: 400-drop\.yaml: knative:\/\/trigger-oidc-service-accounts stands for the Triggers that send to Service falco-drop\/drop, and the release has none/, ran: 0 },
  { name: 'two Services use the senders placeholder', env: { KO_DOCKER_REPO: 'r.example' }, config: 'two-senders', message: /^release: 400-drop\.yaml, 401-other\.yaml: only one Service may use knative:\/\/trigger-oidc-service-accounts/, ran: 0 },
  { name: 'the Service using the senders placeholder names no namespace', env: { KO_DOCKER_REPO: 'r.example' }, config: 'homeless-senders', message: /^release: 400-drop\.yaml: Service drop uses knative:\/\/trigger-oidc-service-accounts but names no namespace/, ran: 0 },
  { name: 'a config file mixes Knative and plain objects', config: 'mixed', message: /^release: 100-namespace\.yaml mixes Knative objects with plain Kubernetes ones: split it/, ran: 0 },
  { name: 'standalone/ holds a Knative object', config: 'knative-standalone', message: /^release: standalone\/500-trigger\.yaml: eventing\.knative\.dev\/v1 Trigger in the release without Knative/, ran: 0 },
  { name: 'standalone/ uses the senders placeholder', config: 'senders-standalone', message: /^release: standalone\/400-deployment\.yaml: knative:\/\/trigger-oidc-service-accounts stands for Knative Triggers/, ran: 0 },
  { name: 'the release without Knative does not run drop', config: 'imageless-standalone', message: /^release: no file in \S+\/standalone uses the image placeholder ko:\/\/falco-drop/, ran: 0 },
  { name: 'a file name is in config/ and in standalone/', config: 'twice-standalone', message: /^release: 300-policy\.yaml and standalone\/300-policy\.yaml: one file name twice/, ran: 0 },
  { name: '--standalone without a standalone/ folder', args: ['--standalone'], config: 'lonely', env: { KO_DOCKER_REPO: 'r.example' }, message: /^release: no standalone\/ folder in \S+: nothing to release without Knative/, ran: 0 },
  { name: 'the config directory does not exist', args: ['--config-dir', '/nonexistent/config'], message: /^release: cannot read the config directory \/nonexistent\/config: ENOENT/, ran: 0 },
  { name: 'an unknown flag', args: ['--push-it'], message: /^release: unknown argument --push-it/, code: 2, ran: 0 },
  { name: 'a flag without its value', args: ['--out='], message: /^release: --out needs a value/, code: 2, ran: 0 },
  { name: '--local with --yaml-only', args: ['--local', '--yaml-only'], message: /do not go together/, code: 2, ran: 0 },
  { name: 'a version that is not a tag', args: ['--version=1.0/evil'], message: /version "1\.0\/evil" is not a valid image tag/, code: 2, ran: 0 },
  { name: 'a tag that is not a tag', args: ['--local', '--tag', '-x'], message: /tag "-x" is not a valid image tag/, code: 2, ran: 0 },
];

/** A config dir with a problem the tool must catch. */
function badConfig(kind: string): string {
  const dir = tempDir('bad');
  if (kind === 'empty') return dir;
  if (kind.endsWith('-standalone') || kind === 'mixed') {
    const config = twoReleaseConfig();
    const broker = 'apiVersion: eventing.knative.dev/v1\nkind: Broker\nmetadata:\n  name: default\n';
    if (kind === 'mixed') writeFileSync(join(config, '100-namespace.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: falco-drop\n---\n' + broker);
    if (kind === 'knative-standalone') writeFileSync(join(config, 'standalone', '500-trigger.yaml'), trigger('t', 'falco-drop', refTo('drop')));
    if (kind === 'senders-standalone') writeFileSync(join(config, 'standalone', '400-deployment.yaml'), knativeService('drop', { DROP_ALLOWED_SENDERS: 'knative://trigger-oidc-service-accounts' }).replace('serving.knative.dev/v1\nkind: Service', 'apps/v1\nkind: Deployment'));
    if (kind === 'imageless-standalone') rmSync(join(config, 'standalone', '400-deployment.yaml'));
    if (kind === 'twice-standalone') writeFileSync(join(config, 'standalone', '300-policy.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n');
    return config;
  }
  if (kind === 'lonely') {
    writeFileSync(join(dir, '400-drop.yaml'), knativeService('drop', {}));
    return dir;
  }
  if (kind.endsWith('-senders')) {
    const senders = { DROP_ALLOWED_SENDERS: 'knative://trigger-oidc-service-accounts' };
    const service = knativeService('drop', senders);
    writeFileSync(join(dir, '400-drop.yaml'), kind === 'homeless-senders' ? service.replace('  namespace: falco-drop\n', '') : service);
    if (kind === 'two-senders') writeFileSync(join(dir, '401-other.yaml'), knativeService('other', senders) + '---\n' + trigger('t', 'falco-drop', refTo('drop')));
    return dir;
  }
  const image = kind === 'none' ? 'docker.io/library/nginx:1.27' : 'ko://falco-drop';
  writeFileSync(join(dir, '100-a.yaml'), kind === 'broken' ? 'kind: [unclosed\n' : `apiVersion: v1\nkind: Service\nspec:\n  containers:\n    - image: ${image}\n`);
  if (kind === 'stray') writeFileSync(join(dir, '200-x.yaml'), 'spec:\n  containers:\n    - image: "ko://other"\n');
  return dir;
}

for (const f of failures) {
  t.test(`fails with one clear line and leaves the release untouched when ${f.name}`, async (t) => {
    const { out, before } = existingRelease();
    let path = f.path ?? fakeBin;
    if (path === '__docker_only__' || path === '__broken_docker__') {
      const broken = path === '__broken_docker__';
      path = tempDir('bin');
      writeFileSync(join(path, 'docker'), broken ? '#!/nonexistent/interpreter\n' : readFileSync(join(fakeBin, 'docker')), { mode: 0o755 });
    }
    const args = [...(f.config ? ['--config-dir', badConfig(f.config)] : []), ...(f.args ?? []), '--out', out];
    const run = await runRelease(args, f.env ?? {}, path);
    t.equal(run.code, f.code ?? 1);
    const ours = run.stderr.split('\n').filter((l) => l.startsWith('release:'));
    t.equal(ours.length, 1, run.stderr);
    t.match(ours[0], f.message);
    t.equal(run.calls.length, f.ran, 'commands run before the failure');
    t.equal(readFileSync(out, 'utf8'), before, 'release untouched');
    t.same(readdirSync(join(out, '..')), ['release.yaml'], 'no temporary file left behind');
  });
}

t.test('fails with one clear line when the release cannot be written', async (t) => {
  const run = await runRelease(['--yaml-only', '--out', '/nonexistent/dir/release.yaml']);
  t.equal(run.code, 1);
  t.equal(run.stderr, 'release: cannot write /nonexistent/dir/release.yaml: ENOENT (release not written)\n');
});

t.test('fails with one clear line, and leaves no temporary file, when a release cannot take the place of its target', async (t) => {
  const { out, before } = existingRelease();
  // A directory where release-standalone.yaml should go: the temporary file is written, the rename fails.
  mkdirSync(join(out, '..', 'release-standalone.yaml'));
  const run = await runRelease(['--yaml-only', '--out', out]);
  t.equal(run.code, 1);
  t.match(run.stderr, /^release: cannot write \S+\/release-standalone\.yaml: (EISDIR|ENOTEMPTY|EEXIST|EPERM) \(release not written\)\n$/);
  t.same(readdirSync(join(out, '..')).sort(), ['release-standalone.yaml', 'release.yaml'], 'no temporary file left behind');
  t.not(readFileSync(out, 'utf8'), before, 'release.yaml, renamed first, is the new one');
});

t.test('the config files the release is made of are the top-level ones', async (t) => {
  t.ok(configFiles.length >= 8);
  t.ok(configFiles.every((f) => /^\d{3}-[a-z0-9-]+\.yaml$/.test(f)), 'Knative-style numbered names');
});
