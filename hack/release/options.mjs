// The release tool's command line: flags first, then the environment, then defaults.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sendersPlaceholder } from './senders.mjs';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The placeholder config/ uses for drop's image (ko's `ko://` form). */
export const imagePlaceholder = 'ko://falco-drop';
/** The image's name under KO_DOCKER_REPO (ko's --base-import-paths naming). */
export const imageName = 'falco-drop';
/**
 * Where released images are published. `--yaml-only` writes `<this>:<version>` into
 * release.yaml, the tag a published release pushes; `npm run release` writes the pushed digest.
 */
export const defaultImageRepo = 'ghcr.io/falco-drop/falco-drop';
/** Knative Serving does not resolve tags of kind.local images, so a `kind load`ed image runs. */
export const localImageRepo = `kind.local/${imageName}`;

export const usage = `usage: node hack/release.mjs [mode] [options]

modes (default: build for linux/amd64 and linux/arm64, push to $KO_DOCKER_REPO, use the pushed digest)
  --local          build for this machine with --load, kind load it, reference kind.local/falco-drop:<tag>
  --yaml-only      no Docker: regenerate release.yaml and release-standalone.yaml with ${defaultImageRepo}:<version>
  --dry-run        print the docker (and kind) commands instead of running them; write nothing

releases
  release.yaml (Knative) and, next to it, release-standalone.yaml (no Knative: config/standalone/ and the
  files of config/ that hold no Knative object); --out names the first, the second is <name>-standalone.yaml
  --standalone     only the release without Knative, written to --out (default release-standalone.yaml)

options
  --out <file|->   where to write the release (env RELEASE_OUT; default release.yaml, or - (stdout) with --local,
                   which writes one release only: the Knative one, or the other with --standalone)
  --config-dir <d> manifests to release: its top-level *.yaml in file-name order (env RELEASE_CONFIG_DIR; default config/)
  --version <v>    version label and image tag (env RELEASE_VERSION; default package.json's version)
  --tag <t>        image tag for --local (default local-<UTC timestamp>)
  --context <d>    docker build context (default the repository root)

drop's DROP_ALLOWED_SENDERS (placeholder ${sendersPlaceholder}) becomes the OIDC service accounts
Knative makes for the release's Triggers to drop, named by Knative's rule (hashed past 29 characters)

environment
  KO_DOCKER_REPO     registry to push to, e.g. ghcr.io/you: the image is $KO_DOCKER_REPO/${imageName}
  KIND_CLUSTER_NAME  kind cluster for --local (default kind)`;

export class UsageError extends Error {}

const valueFlags = new Map([
  ['--out', 'out'],
  ['--config-dir', 'configDir'],
  ['--version', 'version'],
  ['--tag', 'tag'],
  ['--context', 'context'],
]);
const switches = new Map([
  ['--local', 'local'],
  ['--yaml-only', 'yamlOnly'],
  ['--dry-run', 'dryRun'],
  ['--standalone', 'standalone'],
  ['--help', 'help'],
  ['-h', 'help'],
]);

/** Parses argv (without node and the script) and the environment into the tool's options. */
export function parseOptions(argv, env, now = new Date()) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (switches.has(name)) {
      flags[switches.get(name)] = true;
    } else if (valueFlags.has(name)) {
      const value = eq > 0 && arg.startsWith('--') ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '') throw new UsageError(`${name} needs a value`);
      flags[valueFlags.get(name)] = value;
    } else {
      throw new UsageError(`unknown argument ${arg} (--help lists them)`);
    }
  }
  if (flags.local && flags.yamlOnly) throw new UsageError('--local and --yaml-only do not go together');
  const mode = flags.yamlOnly ? 'yaml-only' : flags.local ? 'local' : 'push';
  const version = flags.version ?? env.RELEASE_VERSION ?? packageVersion();
  if (!/^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$/.test(version)) throw new UsageError(`version "${version}" is not a valid image tag`);
  const tag = flags.tag ?? (mode === 'local' ? `local-${now.toISOString().replace(/[-:T]/g, '').slice(0, 14)}` : version);
  if (!/^[0-9A-Za-z_][0-9A-Za-z._-]{0,127}$/.test(tag)) throw new UsageError(`tag "${tag}" is not a valid image tag`);
  const repo = env.KO_DOCKER_REPO?.replace(/\/+$/, '') || undefined;
  return {
    help: flags.help === true,
    mode,
    dryRun: flags.dryRun === true,
    standalone: flags.standalone === true,
    out: flags.out ?? env.RELEASE_OUT ?? (mode === 'local' ? '-' : join(repoRoot, flags.standalone ? 'release-standalone.yaml' : 'release.yaml')),
    configDir: resolve(flags.configDir ?? env.RELEASE_CONFIG_DIR ?? join(repoRoot, 'config')),
    context: resolve(flags.context ?? repoRoot),
    version,
    tag,
    repo,
    kindCluster: env.KIND_CLUSTER_NAME || 'kind',
  };
}

/** Where the release without Knative goes next to the Knative one: release.yaml -> release-standalone.yaml. */
export function standaloneOut(out) {
  return out.replace(/(\.ya?ml)?$/, '-standalone$1');
}

function packageVersion() {
  return JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version;
}
