/**
 * darch's layering, checked by scripts/test.sh (`npx depcruise src --config .dependency-cruiser.cjs`).
 * The order is read from docs/ARCHITECTURE.md (the module list at its top), so the doc and
 * the rule cannot disagree: a folder imports only folders below it.
 *
 * - no import cycle between files under src/, and none between folders;
 * - no folder imports one above it in LAYERS; inside src/boot, the same for BOOT_PARTS;
 * - every folder under src/ is in LAYERS (a new one must be placed before it can be used).
 *
 * Type-only imports count (tsPreCompilationDeps): a type names the module that owns the
 * shape, so a type pointing upwards is the same layering mistake as a call, only cheaper to
 * make. Dynamic `import()` counts too.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const src = path.join(__dirname, 'src');
// The first code block of docs/ARCHITECTURE.md lists the folders top to bottom:
// `src/<layer>/  …` at the start of a line, src/boot's parts indented under it.
const doc = fs.readFileSync(path.join(__dirname, 'docs', 'ARCHITECTURE.md'), 'utf8');
const block = doc.split('```')[1] ?? '';
/** Top to bottom. */
const LAYERS = [...block.matchAll(/^src\/([a-z-]+)\/\s/gm)].map((m) => m[1]);
/** src/boot's parts, top to bottom ('' = the files directly in src/boot: the API over both boot loaders). */
const BOOT_PARTS = ['', ...[...block.matchAll(/^\s+src\/boot\/([a-z-]+)\/\s/gm)].map((m) => m[1])];
if (LAYERS.length < 10 || !LAYERS.includes('boot')) throw new Error('docs/ARCHITECTURE.md: no module list found in its first code block');

const dirs = (d) => fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
for (const d of dirs(src)) if (!LAYERS.includes(d)) throw new Error(`src/${d}/ is in no layer: place it in docs/ARCHITECTURE.md's module list`);
for (const d of dirs(path.join(src, 'boot'))) if (!BOOT_PARTS.includes(d)) throw new Error(`src/boot/${d}/ is in no part: place it under src/boot/ in docs/ARCHITECTURE.md's module list`);

const alt = (names) => `(${names.join('|')})`;
/** The path pattern of one boot part's files ('' = files directly in src/boot). */
const bootPart = (p) => (p === '' ? '^src/boot/[^/]+$' : `^src/boot/${p}/`);

const layerRules = LAYERS.slice(1).map((layer, i) => ({
  name: `layer-${layer}`,
  severity: 'error',
  comment: `src/${layer} may import only folders below it (docs/ARCHITECTURE.md): not ${LAYERS.slice(0, i + 1).join(', ')}`,
  from: { path: `^src/${layer}/` },
  to: { path: `^src/${alt(LAYERS.slice(0, i + 1))}/` },
}));

const bootRules = BOOT_PARTS.slice(1).map((part, i) => ({
  name: `boot-part-${part}`,
  severity: 'error',
  comment: `src/boot/${part} may import only the parts of src/boot below it (docs/ARCHITECTURE.md): not ${BOOT_PARTS.slice(0, i + 1).map((p) => `src/boot/${p}`).join(', ')}`,
  from: { path: bootPart(part) },
  to: { path: alt(BOOT_PARTS.slice(0, i + 1).map(bootPart)) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-file-cycle',
      severity: 'error',
      comment: 'an import cycle between files under src/',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-folder-cycle',
      severity: 'error',
      comment: 'an import cycle between folders under src/',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    ...layerRules,
    ...bootRules,
  ],
  options: {
    // src/ only; never follow into node_modules (fast, and nothing there is ours to check).
    includeOnly: '^src/',
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
    cache: false,
    progress: { type: 'none' },
  },
};
