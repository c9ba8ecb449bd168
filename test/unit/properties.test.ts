/**
 * Property-based tests (fast-check) of the parsers hostile or damaged input reaches: any
 * input gives a result or darch's own error with its code, never a crash, and what darch
 * writes reads back as written. A counterexample fast-check finds is kept below as a
 * regression case (none yet).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseGrubEnv, serializeGrubEnv } from '../../src/boot/grub/grubenv.js';
import { DarchError } from '../../src/lib/errors.js';
import { normalizePath, recOf } from '../../src/layers/flatten.js';
import { ByteReader, readTar } from '../../src/layers/tar.js';
import tar from 'tar-stream';
import { parsePayload } from '../../src/trust/payload.js';
import { PolicySchema } from '../../src/trust/policy.js';
import * as z from '../../src/lib/zod.js';
import { parseConfig, parseDockerArchiveManifest, parseIndex, parseJsonText, parseManifest } from '../../src/oci/manifest-json.js';
import { MediaType } from '../../src/oci/mediatypes.js';
import { loadConfig } from '../../src/lib/config.js';
import { loadSettings } from '../../src/recipes/settings.js';
import { ContainerfileError, parseContainerfile } from '../../src/recipes/containerfile.js';

/** Runs fn; a throw must be a DarchError with one of `codes`. */
function onlyDarchErrors(codes: string[], fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DarchError, `not a DarchError: ${String(err)}`);
    assert.ok(codes.includes(err.code), `unexpected code ${err.code}: ${err.message}`);
  }
}

const RUNS = { numRuns: 500 };

describe('properties', () => {
  it('grubenv: what darch writes reads back; any 1024 bytes parse or are reported corrupt', () => {
    const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/);
    const vars = fc.uniqueArray(fc.tuple(name, fc.string({ unit: 'grapheme', maxLength: 40 })), { selector: ([n]) => n, maxLength: 8 });
    fc.assert(
      fc.property(vars, (pairs) => {
        const buf = serializeGrubEnv(pairs);
        assert.equal(buf.length, 1024);
        assert.deepEqual([...parseGrubEnv(buf)], pairs);
      }),
      RUNS,
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), (bytes) => onlyDarchErrors(['E_GRUBENV_CORRUPT'], () => parseGrubEnv(bytes))),
      RUNS,
    );
    // Mostly-valid blocks: a real one with bytes flipped.
    const good = serializeGrubEnv([
      ['darch_default', 'darch-os@a'],
      ['darch_trial', 'darch-os@b'],
    ]);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(1023), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), (flips) => {
        const b = Buffer.from(good);
        for (const [i, v] of flips) b[i] = v;
        onlyDarchErrors(['E_GRUBENV_CORRUPT'], () => parseGrubEnv(b));
      }),
      RUNS,
    );
  });

  it('layer entry names: whatever a tar says, the path stays inside the root or the layer is refused', () => {
    const segment = fc.oneof(fc.constantFrom('..', '.', '', 'etc', '.wh.x', '.wh..wh..opq', 'a b'), fc.string({ maxLength: 6 }));
    const tarName = fc.array(segment, { maxLength: 8 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(tarName, fc.constantFrom('file', 'dir', 'symlink', 'link'), tarName, (nameIn, type, link) => {
        onlyDarchErrors(['E_BAD_LAYER'], () => {
          const p = normalizePath(nameIn, 0);
          assert.ok(!p.startsWith('/') && !p.split('/').includes('..') && !p.split('/').includes('.'), `escapes: ${p}`);
          const rec = recOf({ name: nameIn, type, linkname: link, size: 0, mode: 0o644 } as never, 0, 0);
          if (rec) assert.ok(!rec.path.startsWith('/') && !rec.path.split('/').includes('..'), `record escapes: ${rec.path}`);
          if (rec && type === 'link') assert.ok(!rec.linkname?.split('/').includes('..'), `hard link escapes: ${rec.linkname}`);
        });
      }),
      RUNS,
    );
  });

  it('tar reader: a real archive with bytes flipped, cut short or padded reads to the end or stops with darch’s error', async () => {
    const pack = tar.pack();
    pack.entry({ name: 'etc/', type: 'directory' });
    pack.entry({ name: 'etc/hostname', mode: 0o644 }, 'box\n');
    pack.entry({ name: `usr/share/${'long-name/'.repeat(12)}file`, pax: { 'SCHILY.xattr.user.k': 'v' } }, 'x'.repeat(700));
    pack.entry({ name: 'bin/sh', type: 'symlink', linkname: 'busybox' });
    pack.finalize();
    const parts: Buffer[] = [];
    for await (const b of pack as AsyncIterable<Buffer>) parts.push(b);
    const good = Buffer.concat(parts);
    const read = async (bytes: Buffer) => {
      const entries: string[] = [];
      const chunks = (async function* () {
        yield bytes;
      })();
      for await (const e of readTar(new ByteReader(chunks))) {
        for await (const _ of e.body());
        entries.push(e.header.name);
      }
      return entries;
    };
    assert.deepEqual(
      await read(good),
      ['etc', 'etc/hostname', `usr/share/${'long-name/'.repeat(12)}file`, 'bin/sh'].map((n) => (n === 'etc' ? 'etc/' : n)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(good.length),
        fc.boolean(),
        async (flips, cut, pad) => {
          const b = Buffer.from(good.subarray(0, pad ? good.length : cut));
          for (const [i, v] of flips) if (i < b.length) b[i] = v;
          try {
            await read(pad ? Buffer.concat([b, Buffer.alloc(cut)]) : b);
          } catch (err) {
            assert.ok(err instanceof DarchError, `not a DarchError: ${String(err)}`);
            assert.ok(['E_BAD_LAYER', 'E_TRUNCATED', 'E_UNSUPPORTED'].includes(err.code), err.code);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('signature payloads and policies: any JSON parses or is refused with darch’s error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (text) => onlyDarchErrors(['E_UNTRUSTED'], () => parsePayload(Buffer.from(text)))),
      RUNS,
    );
    const requirement = fc.oneof(
      fc.constant({ type: 'reject' }),
      fc.constant({ type: 'insecureAcceptAnything' }),
      fc.record({ type: fc.constant('sigstoreSigned'), keyPath: fc.string() }, { requiredKeys: ['type'] }),
      fc.anything(),
    );
    fc.assert(
      fc.property(
        fc.record({ default: fc.array(requirement), transports: fc.dictionary(fc.string(), fc.dictionary(fc.string(), fc.array(requirement))) }),
        (doc) => {
          const r = z.safeParse(PolicySchema, doc);
          if (r.success) {
            assert.ok(r.data.default.length > 0, 'an empty list never passes');
            for (const t of Object.values(r.data.transports ?? {})) for (const l of Object.values(t)) assert.ok(l.length > 0);
          }
        },
      ),
      RUNS,
    );
  });

  it('registry and archive JSON: manifests, indexes, configs and docker-save manifests parse or are refused with darch’s error', () => {
    const problem = { code: 'E_REGISTRY', hint: 'h' } as const;
    const parsers = [parseManifest, parseIndex, parseConfig, parseDockerArchiveManifest];
    const d = `sha256:${'a'.repeat(64)}`;
    const desc = fc.record(
      {
        mediaType: fc.oneof(fc.string(), fc.constant(MediaType.ociLayerGzip)),
        digest: fc.oneof(fc.constant(d), fc.string()),
        size: fc.oneof(fc.nat(), fc.double(), fc.anything()),
      },
      { requiredKeys: [] },
    );
    const doc = fc.oneof(
      fc.anything(),
      fc.record(
        { schemaVersion: fc.oneof(fc.constant(2), fc.anything()), config: fc.oneof(desc, fc.anything()), layers: fc.oneof(fc.array(desc), fc.anything()) },
        { requiredKeys: [] },
      ),
      fc.record({ schemaVersion: fc.constant(2), manifests: fc.oneof(fc.array(desc), fc.anything()) }, { requiredKeys: [] }),
      fc.record(
        {
          architecture: fc.string(),
          os: fc.string(),
          rootfs: fc.oneof(fc.record({ type: fc.constant('layers'), diff_ids: fc.array(fc.constant(d)) }), fc.anything()),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(doc, (x) => {
        for (const parse of parsers) {
          let out: unknown;
          try {
            out = parse(x, 'the document', problem);
          } catch (err) {
            assert.ok(err instanceof DarchError && err.code === 'E_REGISTRY', `not darch's error: ${String(err)}`);
            continue;
          }
          // What passes is safe to walk the way pull, import and stage walk it.
          const m = out as { layers?: Array<{ size: number; digest: string }>; manifests?: Array<{ size: number }>; config?: { digest: string } };
          for (const l of [...(m.layers ?? []), ...(m.manifests ?? [])]) assert.ok(Number.isSafeInteger(l.size) && l.size >= 0);
          if (parse === parseManifest) assert.equal(typeof m.config?.digest, 'string');
        }
      }),
      RUNS,
    );
    // Regression: a manifest whose layers are not a list used to reach the pull's loop.
    assert.throws(
      () => parseManifest({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: 'x', digest: d, size: 1 }, layers: 'x' }, 'm', problem),
      /m is malformed at layers/,
    );
    assert.throws(() => parseJsonText('{"layers": [', 'the manifest of a:b', problem), /the manifest of a:b is not valid JSON/);
  });

  it('config.toml and recipe.toml: any text loads or is refused with darch’s error naming the file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'darch-prop-'));
    try {
      const key = fc.oneof(
        fc.constantFrom('keep', 'compression', 'verity', 'tries', 'image', 'policy', 'reboot', 'env', 'tags', 'labels', 'insecure'),
        fc.string(),
      );
      const value = fc.oneof(
        fc.integer().map(String),
        fc.boolean().map(String),
        fc.string().map((v) => JSON.stringify(v)),
        fc.constant('[1, "a"]'),
        fc.constant('{ a = 1 }'),
        fc.string(),
      );
      const section = fc.oneof(
        fc.constantFrom('[stage]', '[boot]', '[update]', '[registry]', '[store]', '[build]'),
        fc.string().map((s) => `[${s}]`),
      );
      const toml = fc.oneof(
        fc.string(),
        fc
          .array(
            fc.oneof(
              section,
              fc.tuple(key, value).map(([k, v]) => `${k} = ${v}`),
            ),
            { maxLength: 8 },
          )
          .map((l) => l.join('\n')),
      );
      let n = 0;
      await fc.assert(
        fc.asyncProperty(toml, async (text) => {
          const file = path.join(dir, `c${n++}.toml`);
          await writeFile(file, text);
          for (const [load, code] of [
            [() => loadConfig(file), 'E_CONFIG'],
            [() => loadSettings(dir), 'E_RECIPE_INVALID'],
          ] as const) {
            if (code === 'E_RECIPE_INVALID') await writeFile(path.join(dir, 'recipe.toml'), text);
            try {
              await load();
            } catch (err) {
              assert.ok(err instanceof DarchError && err.code === code, `not darch's error: ${String(err)}`);
              assert.ok(err.message.includes(code === 'E_CONFIG' ? file : 'recipe.toml'), `names the file: ${err.message}`);
            }
          }
        }),
        { numRuns: 200 },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('Containerfiles: any text parses or is refused with the parser’s error, which loadRecipe turns into E_RECIPE_INVALID', () => {
    const line = fc.oneof(
      fc.string(),
      fc.tuple(fc.constantFrom('FROM', 'from', 'RUN', 'ARG', 'COPY --from=', '# comment'), fc.string()).map(([a, b]) => `${a} ${b}`),
      fc.string().map((s) => `${s}\\`),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        try {
          parseContainerfile(lines.join('\n'));
        } catch (err) {
          assert.ok(err instanceof ContainerfileError, `not the parser's error: ${String(err)}`);
        }
      }),
      RUNS,
    );
  });
});
