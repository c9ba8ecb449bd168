#!/usr/bin/env node
/**
 * One owner per on-disk contract (docs/ARCHITECTURE.md, "On-disk contracts and their
 * owners"): outside its owner module no code parses a contract's JSON or spells its file
 * name; everything else calls the owner. Run by scripts/test.sh after the build.
 *
 * Looks at code only: comments are skipped, and a file name counts when a string literal (or
 * the text of a template literal) has it as a whole path component, so `vmlinuz-${version}`
 * (a kernel inside an image) is not `vmlinuz` (the staged file). A literal with whitespace in
 * it is prose (a message or a hint naming the file for a person), not a path, and is skipped.
 *
 *   node scripts/check-contracts.mjs        exit 1 and one line per stray use
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Contract file names → the modules that may spell them (the owner table, plus the reasons given). */
const NAMES = {
  'images.json': ['src/stage/images-json.ts'],
  'image.json': [
    'src/stage/image-json.ts',
    // An image's own /usr/lib/darch/image.json (Darch's format, written by the image's
    // author and read once while staging): kernel discovery's input, not the staged file.
    'src/stage/kernel.ts',
  ],
  'meta.json': ['src/stage/meta-json.ts'],
  'disk.json': ['src/boot/shared/disk-json.ts'],
  grubenv: ['src/boot/grub/grubenv.ts'],
  'grubenv.bak': ['src/boot/grub/grubenv.ts'],
  'rootfs.squash': ['src/stage/image-json.ts'],
  'initrd.img': [
    'src/stage/image-json.ts',
    // Debian's /initrd.img and /boot/initrd.img symlinks inside an image (kernel discovery).
    'src/stage/kernel.ts',
  ],
  vmlinuz: [
    'src/stage/image-json.ts',
    // Kernels inside an image (/vmlinuz, /boot/vmlinuz, /usr/lib/modules/<v>/vmlinuz).
    'src/stage/kernel.ts',
    // systemd-boot's copy of a kernel on the ESP (`/darch/<id>/vmlinuz`, espFilesOf): the
    // ESP layout that module owns.
    'src/boot/sdboot/sdboot-sync.ts',
  ],
  'grub.cfg': ['src/stage/layout.ts'],
  live: ['src/stage/layout.ts'],
  failed: ['src/stage/failures.ts'],
  'update/state.json': ['src/update/state-json.ts'],
  'EFI/darch': ['src/boot/shared/esp.ts'],
  'loader/entries': ['src/boot/sdboot/sdboot.ts'],
  'policy.json': ['src/trust/policy.ts'],
  readahead: ['src/stage/readahead.ts'],
};

/** Literals that are not darch's files although they end like one. */
const NOT_DARCH = {
  '/boot/grub/grub.cfg': "the distribution's menu, which grub-mkconfig writes (darch boot install)",
  '/boot/grub2/grub.cfg': "the distribution's menu on Fedora (grub2-mkconfig)",
};

/**
 * Where JSON.parse may appear. darch's own contracts go through `parseContract` (zod) in
 * their owner modules, and files people write through `loadValidated`; every other parse
 * is of something that is not a darch contract, each named here with its reason.
 */
const JSON_PARSE_ALLOWED = {
  'src/lib/smallfs.ts': 'parseContract: the one parser of the contracts, called by their owners',
  'src/lib/config.ts': "config.toml's defaults, which the build computed from its schema and put into the executable",
  'src/lib/validated.ts': 'loadValidated: files people write (config.toml, hooks-config.json, recipe.toml)',
  'src/lib/lock.ts': "a lock file's owner record, written and read only there",
  'src/recipes/discover.ts': "a Darch recipe's config.json, through its loader (one key, checked there)",
  'src/oci/store.ts': 'the OCI image layout (oci-layout, index.json, manifests and configs in blobs)',
  'src/oci/manifest-json.ts': 'OCI and Docker manifests, indexes and configs from registries, archives, layouts and the store (its schemas)',
  'src/registry/push.ts': 'manifests and indexes from the image store, being pushed',
  'src/registry/client.ts': "a registry token server's response",
  'src/registry/inspect.ts': 'an image config a registry serves (its labels: the version the update agent reports)',
  'src/registry/auth-file.ts': "containers' auth.json and a credential helper's output",
  'src/build/adopt-layers.ts': 'the OCI layout a builder wrote (index.json, manifest, config)',
  'src/boot/shared/esp.ts': 'sfdisk --json output',
  'src/boot/shared/location.ts': 'findmnt --json output',
  'src/disk/tools.ts': 'sfdisk --json output',
  'src/vm/qemu.ts': "the KVM probe's cache, written and read only there",
  'src/stage/bundle.ts': "a bundle's manifest, written and read only there (export/import)",
  'src/stage/kernel.ts': "an image's own /usr/lib/darch/image.json (Darch's format), checked field by field",
  'src/trust/keys.ts': "an encrypted cosign private key's JSON body (cosign's format), checked by its schema",
  'src/trust/payload.ts': "a simple-signing payload (containers' format), checked by its schema",
  'src/trust/detached.ts': "a bundle's FILE.sig (its owner), checked by its schema",
};

/** Whether a `/` after this code starts a regular expression rather than dividing. */
function regexCanStart(code) {
  const t = code.trimEnd();
  if (t === '') return true;
  if (/[(,=:[!&|?{};+\-*%<>~^]$/.test(t)) return true;
  return /\b(return|typeof|case|do|else|in|of|void|yield|await|throw|new|delete)$/.test(t);
}

/** The code of a TypeScript file as a list of tokens we care about: string texts and code. */
function scan(text) {
  const strings = []; // {text, line}
  let code = '';
  let line = 1;
  const templates = []; // brace depth of each open template's ${ }
  let i = 0;
  const n = text.length;
  const readString = (q) => {
    const start = line;
    let s = '';
    i++;
    while (i < n && text[i] !== q) {
      if (text[i] === '\\') {
        s += text[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (text[i] === '\n') line++;
      s += text[i++];
    }
    i++;
    strings.push({ text: s, line: start });
    code += `""${'\n'.repeat(line - start)}`;
  };
  const readTemplate = () => {
    // from just after ` or } up to ${ or the closing `
    const start = line;
    let s = '';
    while (i < n && text[i] !== '`') {
      if (text[i] === '\\') {
        s += text[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (text[i] === '$' && text[i + 1] === '{') {
        strings.push({ text: `${s}\${}`, line: start, partial: true });
        i += 2;
        templates.push(0);
        code += `${'\n'.repeat(line - start)}\${`;
        return;
      }
      if (text[i] === '\n') line++;
      s += text[i++];
    }
    i++;
    strings.push({ text: s, line: start, partial: true });
    code += `\`${'\n'.repeat(line - start)}`;
  };
  while (i < n) {
    const c = text[i];
    const d = text[i + 1];
    if (c === '/' && d === '/') {
      while (i < n && text[i] !== '\n') i++;
    } else if (c === '/' && d === '*') {
      i += 2;
      while (i < n && !(text[i] === '*' && text[i + 1] === '/')) {
        if (text[i] === '\n') {
          line++;
          code += '\n';
        }
        i++;
      }
      i += 2;
    } else if (c === '/' && regexCanStart(code)) {
      // a regular expression literal: skip it (its quotes are not strings)
      i++;
      let inClass = false;
      while (i < n && text[i] !== '\n' && (inClass || text[i] !== '/')) {
        if (text[i] === '\\') i++;
        else if (text[i] === '[') inClass = true;
        else if (text[i] === ']') inClass = false;
        i++;
      }
      i++;
      code += '/r/';
    } else if (c === "'" || c === '"') {
      readString(c);
    } else if (c === '`') {
      i++;
      readTemplate();
    } else if (c === '{' && templates.length) {
      templates[templates.length - 1]++;
      code += c;
      i++;
    } else if (c === '}' && templates.length) {
      if (templates[templates.length - 1] === 0) {
        templates.pop();
        i++;
        readTemplate();
      } else {
        templates[templates.length - 1]--;
        code += c;
        i++;
      }
    } else {
      if (c === '\n') line++;
      code += c;
      i++;
    }
  }
  return { strings, code };
}

/** Whether `name` (one or more path components) is a whole run of components of `s`. */
function hasComponent(s, name) {
  const parts = s.split('/');
  const want = name.split('/');
  for (let k = 0; k + want.length <= parts.length; k++) {
    if (want.every((w, j) => parts[k + j] === w)) return true;
  }
  return false;
}

function* tsFiles(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

const problems = [];
for (const abs of tsFiles(path.join(root, 'src'))) {
  const rel = path.relative(root, abs).split(path.sep).join('/');
  const text = readFileSync(abs, 'utf8');
  const { strings, code } = scan(text);
  if (/\bJSON\.parse\s*\(/.test(code) && !(rel in JSON_PARSE_ALLOWED)) {
    const lineNo = code.slice(0, code.search(/\bJSON\.parse\s*\(/)).split('\n').length;
    problems.push(
      `${rel}:${lineNo}: JSON.parse outside the contract modules: read it through its owner (parseContract), or add it to JSON_PARSE_ALLOWED with the reason it is not a darch contract`,
    );
  }
  for (const s of strings) {
    if (/\s/.test(s.text) || s.text in NOT_DARCH) continue;
    for (const [name, owners] of Object.entries(NAMES)) {
      if (!owners.includes(rel) && hasComponent(s.text, name)) {
        problems.push(`${rel}:${s.line}: '${name}' spelled outside its owner (${owners[0]}): use the owner's constant or function`);
      }
    }
  }
}

// Every allowed file must still exist and still need it, so the list cannot rot.
for (const f of Object.keys(JSON_PARSE_ALLOWED)) {
  let code;
  try {
    code = scan(readFileSync(path.join(root, f), 'utf8')).code;
  } catch {
    problems.push(`scripts/check-contracts.mjs: JSON_PARSE_ALLOWED names ${f}, which does not exist`);
    continue;
  }
  if (!/\bJSON\.parse\s*\(/.test(code)) problems.push(`scripts/check-contracts.mjs: JSON_PARSE_ALLOWED names ${f}, which has no JSON.parse: remove it`);
}

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`✖ ${problems.length} contract check failure(s) (scripts/check-contracts.mjs)`);
  process.exit(1);
}
