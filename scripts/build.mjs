// Bundles the CLI into one ESM file so `darch` starts without resolving hundreds of modules.
import { build } from 'esbuild';
import { chmod, readFile } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/darch.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  legalComments: 'none',
  define: { __DARCH_VERSION__: JSON.stringify(pkg.version) },
  // CommonJS dependencies call require() for Node built-ins; an ESM bundle has no require.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __darchCreateRequire } from 'node:module';\nconst require = __darchCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
await chmod('dist/darch.mjs', 0o755);
