import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseContainerfile, rewriteFroms } from '../../src/recipes/containerfile.js';
import type { Recipe } from '../../src/recipes/discover.js';
import { RecipeGraph, renderTree } from '../../src/recipes/graph.js';
import { defaultSettings } from '../../src/recipes/settings.js';

function recipe(name: string, parent: string): Recipe {
  const p = parent.startsWith('external:') ? ({ kind: 'external', ref: parent.slice(9) } as const) : ({ kind: 'recipe', name: parent } as const);
  return {
    format: 'darch',
    name,
    dir: `/r/${name}`,
    script: `/r/${name}/script`,
    parent: p,
    deps: p.kind === 'recipe' ? [p.name] : [],
    externals: [],
    settings: defaultSettings(),
  };
}

test('build order: parents first, ties by name, only what is needed', () => {
  const g = new RecipeGraph([
    recipe('zeta', 'external:a'),
    recipe('desktop', 'base'),
    recipe('base', 'external:a'),
    recipe('alpha', 'base'),
    recipe('gaming', 'desktop'),
  ]);
  assert.deepEqual(g.buildOrder(), ['base', 'alpha', 'desktop', 'gaming', 'zeta']);
  assert.deepEqual(g.buildOrder(['gaming']), ['base', 'desktop', 'gaming']);
  assert.deepEqual(g.buildOrder(['gaming', 'alpha']), ['base', 'alpha', 'desktop', 'gaming']);
  assert.deepEqual(g.parents('gaming'), ['desktop', 'base', 'external:a']);
  assert.deepEqual(g.children('base'), ['alpha', 'desktop']);
  assert.equal(renderTree(g.tree()), 'external:a\n├── base\n│   ├── alpha\n│   └── desktop\n│       └── gaming\n└── zeta');
});

test('a cycle is reported with its path', () => {
  assert.throws(() => new RecipeGraph([recipe('a', 'b'), recipe('b', 'c'), recipe('c', 'a'), recipe('d', 'external:x')]), /cycle: a → b → c → a/);
  assert.throws(() => new RecipeGraph([recipe('a', 'a')]), /cycle: a → a/);
});

test('Containerfile FROM lines: recipes, externals, stages, continuations', () => {
  const text =
    '# syntax\nARG X=1\nFROM --platform=linux/amd64 darch:base AS build\nRUN make\nFROM \\\n  debian:12 AS run\nCOPY --from=build /out /out\nFROM run\n';
  const p = parseContainerfile(text);
  assert.deepEqual(
    p.froms.map((f) => f.target),
    [
      { kind: 'recipe', recipe: 'base' },
      { kind: 'external', ref: 'debian:12' },
      { kind: 'stage', stage: 'run' },
    ],
  );
  assert.deepEqual(p.finalBase, { kind: 'external', ref: 'debian:12' });
  const out = rewriteFroms(text, p, (t) => (t.kind === 'recipe' ? 'oci:/s:base:latest' : t.kind === 'external' ? 'oci:/s:debian:12' : undefined));
  assert.equal(
    out,
    '# syntax\nARG X=1\nFROM --platform=linux/amd64 oci:/s:base:latest AS build\nRUN make\nFROM oci:/s:debian:12 AS run\n\nCOPY --from=build /out /out\nFROM run\n',
  );
  assert.throws(() => parseContainerfile('FROM $BASE\n'), /uses a variable/);
  assert.throws(() => parseContainerfile('RUN true\n'), /no FROM/);
  assert.throws(() => parseContainerfile('FROM darch:base:v1\n'), /darch:<recipe>/);
});
