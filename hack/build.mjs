// Bundles the service into dist/ with esbuild. A single bundled file starts several times
// faster than loading node_modules one file at a time (@kubernetes/client-node alone takes
// 0.4–1 s unbundled): cold starts are on the security path (npm run bench measures it).
import { build } from 'esbuild';
import { existsSync } from 'node:fs';

const entryPoints = ['src/main.ts', 'src/cli.ts'].filter((f) => existsSync(f));
await build({
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  // Some bundled CommonJS dependencies call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __dropRequire } from 'node:module'; const require = __dropRequire(import.meta.url);" },
});
