// Bundles the CLI so `darch` starts without resolving hundreds of modules. Code splitting
// puts each command's code in chunks that dist/darch.mjs imports only when that command
// runs: parsing one 2.5 MB file cost `darch --version` about 0.1 s (bench/startup.ts).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmod, readFile, rm } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
// The commit `darch --version` names; a build outside a git checkout says so.
function commit() {
  try {
    const id = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${id}-dirty` : id;
  } catch {
    return 'unknown commit';
  }
}
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
  define: { __DARCH_VERSION__: JSON.stringify(pkg.version), __DARCH_COMMIT__: JSON.stringify(commit()) },
  // CommonJS dependencies call require() for Node built-ins; an ESM bundle has no require.
  // (esbuild puts the banner in every chunk, each a module of its own.)
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __darchCreateRequire } from 'node:module';\nconst require = __darchCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
await chmod('dist/darch.mjs', 0o755);
// Man pages from the command definitions, by the darch just built.
execFileSync(process.execPath, ['dist/darch.mjs', '--quiet', 'man', '--output', 'dist/man'], { stdio: 'inherit' });
