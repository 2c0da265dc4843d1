// Bundles the service into dist/ with esbuild. A single bundled file starts several times
// faster than loading node_modules one file at a time (@kubernetes/client-node alone takes
// 0.4–1 s unbundled): cold starts are on the security path (npm run bench measures it).
// The service's bundle is split where src/ imports dynamically: the Kubernetes client's typed
// APIs and their models (src/kube-apis.ts, about half of the code) are a chunk of their own
// (dist/chunks/), loaded on the first API call rather than before listening.
import { Ajv } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { build } from 'esbuild';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const kubeClient = new URL('../node_modules/@kubernetes/client-node/dist/', import.meta.url).pathname;

/**
 * Keeps the Kubernetes client's typed APIs and models (about 7 MB of the 10 MB bundle) out of
 * what the service evaluates before listening; src/kube-apis.ts loads them on the first call.
 * esbuild puts a module in the chunk of every entry whose imports reach it, used or not, and the
 * client's index (and its config.js, through gen/index.js) reaches all of them. So:
 *  - src/ (but kube-apis.ts) imports from '@kubernetes/client-node' only the values below, taken
 *    from the client's own small modules (a name not listed fails the build: list it here);
 *  - config.js (KubeConfig) gets the two values it takes from gen/index.js from their modules;
 *  - the client's modules are marked free of side effects (it declares no `sideEffects`; they
 *    define classes and functions and run nothing on import), so only what is used is kept.
 */
const kubeClientSplit = {
  name: 'kube-client-split',
  setup(build) {
    const slim = {
      src: `export { ApiException } from '${kubeClient}gen/apis/exception.js';
export { KubeConfig } from '${kubeClient}config.js';
export { PatchStrategy } from '${kubeClient}patch.js';
export { setHeaderOptions } from '${kubeClient}middleware.js';
export { V1MicroTime } from '${kubeClient}types.js';`,
      gen: `export { createConfiguration } from '${kubeClient}gen/configuration.js';
export { ServerConfiguration } from '${kubeClient}gen/servers.js';`,
    };
    build.onResolve({ filter: /^@kubernetes\/client-node$/ }, (args) =>
      args.importer.includes('/src/') && !args.importer.endsWith('/src/kube-apis.ts') ? { path: 'src', namespace: 'kube-client-slim' } : undefined,
    );
    build.onResolve({ filter: /^\.\/gen\/index\.js$/ }, (args) => (args.importer === `${kubeClient}config.js` ? { path: 'gen', namespace: 'kube-client-slim' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'kube-client-slim' }, (args) => ({ contents: slim[args.path], loader: 'js', resolveDir: kubeClient }));
    build.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === 'resolving') return undefined;
      const fromClient = args.importer.startsWith(kubeClient) && args.path.startsWith('.');
      if (!fromClient && !args.path.startsWith('@kubernetes/client-node')) return undefined;
      const resolved = await build.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, importer: args.importer, pluginData: 'resolving' });
      // What esbuild could not resolve is reported as its own errors, the same as without the plugin.
      return { path: resolved.path, sideEffects: false, errors: resolved.errors };
    });
  },
};

/**
 * node:http without its lazy exports. An ES module import of node:http (the service's own, and
 * the Kubernetes client's) makes Node build the module's ESM facade, which reads every export,
 * and reading WebSocket, CloseEvent and MessageEvent loads Node's bundled undici: about a tenth
 * of the start-up, for classes drop never uses. This module takes node:http from
 * process.getBuiltinModule instead and exports the rest, the values as they are at start-up.
 */
const lazyHttpExports = new Set(['WebSocket', 'CloseEvent', 'MessageEvent']);
const httpWithoutLazyExports = {
  name: 'http-without-lazy-exports',
  setup(build) {
    build.onResolve({ filter: /^(node:)?http$/ }, (args) => (args.kind === 'import-statement' ? { path: 'node:http', namespace: 'http-without-lazy-exports' } : undefined));
    build.onLoad({ filter: /.*/, namespace: 'http-without-lazy-exports' }, () => ({
      loader: 'js',
      contents: `const http = process.getBuiltinModule('node:http');
export default http;
export const { ${Object.keys(http).filter((name) => !lazyHttpExports.has(name)).join(', ')} } = http;`,
    }));
  },
};

// Some bundled CommonJS dependencies call require(); every ESM bundle built here gets one.
const requireBanner = { js: "import { createRequire as __dropRequire } from 'node:module'; const require = __dropRequire(import.meta.url);" };

/**
 * src/validators.ts compiled ahead of time. The service would compile each JSON schema it checks
 * (the policy's shape, every action's parameters) with ajv as it starts: about 65 ms of CPU. Here
 * the schemas are read from src/ (bundled on their own and imported), compiled once at build time
 * with the service's own ajv options, and their code (ajv's standalone code, which needs only
 * ajv's small runtime helpers) stands in for the module, with the same two functions.
 * test/bundle.test.ts holds the built validators to the answers of the ones src/ compiles.
 */
async function standaloneValidators() {
  const schemas = await build({
    stdin: { contents: "export { validatorSchemas } from './validators.ts'; export { ajvOptions } from './policy-schema.ts';", resolveDir: 'src', loader: 'ts' },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    logLevel: 'warning',
    plugins: [kubeClientSplit],
    banner: requireBanner,
  });
  const dir = mkdtempSync(join(tmpdir(), 'drop-build-'));
  let module;
  try {
    writeFileSync(join(dir, 'schemas.mjs'), schemas.outputFiles[0].text);
    module = await import(pathToFileURL(join(dir, 'schemas.mjs')).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const { policy, parameters } = module.validatorSchemas();
  const ajv = new Ajv({ ...module.ajvOptions, code: { source: true, esm: true } });
  const actions = [...parameters.keys()];
  ajv.addSchema(policy, 'policy');
  for (const name of actions) ajv.addSchema(parameters.get(name), `action:${name}`);
  const code = standaloneCode(ajv, Object.fromEntries([['policy', 'policy'], ...actions.map((name, i) => [`action${i}`, `action:${name}`])]));
  return `${code}
const byAction = new Map([${actions.map((name, i) => `[${JSON.stringify(name)}, action${i}]`).join(', ')}]);
export function policyValidator() { return policy; }
export function parametersValidator(action) { return byAction.get(action); }
`;
}

const validatorsAheadOfTime = {
  name: 'validators-ahead-of-time',
  setup(build) {
    let code;
    build.onLoad({ filter: /[\\/]src[\\/]validators\.ts$/ }, async (args) => ({ contents: (code ??= await standaloneValidators()), loader: 'js', resolveDir: join(args.path, '..') }));
  },
};

const common = {
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: true,
  // Without whitespace and comments, the bundle is ASCII (esbuild escapes every other character
  // in code): V8 keeps an ASCII source as one byte a character for as long as the process runs,
  // and any other character in it, even in a comment, makes it two. The start-up code's source
  // took 8.2 MiB of the heap before, 2.8 MiB after. Names are kept, so logs and stacks read the same.
  minifyWhitespace: true,
  legalComments: 'linked',
  logLevel: 'warning',
  plugins: [kubeClientSplit, httpWithoutLazyExports, validatorsAheadOfTime],
  banner: requireBanner,
};
await build({ ...common, entryPoints: ['src/main.ts'], splitting: true, chunkNames: 'chunks/[name]-[hash]' });
if (existsSync('src/cli.ts')) await build({ ...common, entryPoints: ['src/cli.ts'] });
