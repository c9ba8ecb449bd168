// Bundles the CLI so `darch` starts without resolving hundreds of modules. Code splitting
// puts each command's code in chunks that dist/darch.mjs imports only when that command
// runs: parsing one 2.5 MB file cost `darch --version` about 0.1 s (bench/startup.ts).
import { build } from 'esbuild';
import { chmod, readFile, rm } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
await rm('dist', { recursive: true, force: true }); // no stale chunks
await build({
  entryPoints: { darch: 'src/cli/main.ts' },
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  legalComments: 'none',
  define: { __DARCH_VERSION__: JSON.stringify(pkg.version) },
  // CommonJS dependencies call require() for Node built-ins; an ESM bundle has no require.
  // (esbuild puts the banner in every chunk, each a module of its own.)
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __darchCreateRequire } from 'node:module';\nconst require = __darchCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
await chmod('dist/darch.mjs', 0o755);
