/**
 * The part of a Containerfile darch must understand: its FROM lines. `FROM darch:<recipe>`
 * names another recipe; `FROM scratch` and earlier stage names are left alone; anything else
 * is an external image, looked up in darch's image store (not a registry). Before a build
 * the FROM lines are rewritten to `oci:<store>:<name:tag>` so the builder reads darch's
 * store directly.
 */
export const RECIPE_PREFIX = 'darch:';

export type FromTarget = { kind: 'recipe'; recipe: string } | { kind: 'external'; ref: string } | { kind: 'stage'; stage: string } | { kind: 'scratch' };

export interface FromLine {
  /** Index of the logical instruction's first physical line (0-based). */
  line: number;
  /** Physical lines the instruction spans (continuations). */
  span: number;
  flags: string[];
  image: string;
  alias?: string;
  target: FromTarget;
}

export interface ParsedContainerfile {
  froms: FromLine[];
  /** The base the final stage starts from, following stage aliases back to an image. */
  finalBase: FromTarget;
}

export class ContainerfileError extends Error {}

/** Join continuation lines; report each instruction with its first line number. */
function instructions(text: string): Array<{ line: number; span: number; text: string }> {
  const lines = text.split(/\r?\n/);
  const out: Array<{ line: number; span: number; text: string }> = [];
  let cur: { line: number; span: number; text: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const trimmed = raw.trim();
    if (!cur && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (cur && trimmed.startsWith('#')) {
      cur.span++;
      continue;
    }
    const cont = /\\\s*$/.test(raw);
    const piece = cont ? raw.replace(/\\\s*$/, '') : raw;
    if (cur) {
      cur.text += ` ${piece.trim()}`;
      cur.span++;
    } else cur = { line: i, span: 1, text: piece.trim() };
    if (!cont) {
      out.push(cur);
      cur = undefined;
    }
  }
  if (cur) out.push(cur);
  return out;
}

export function parseContainerfile(text: string): ParsedContainerfile {
  const froms: FromLine[] = [];
  const stages = new Map<string, FromTarget>();
  for (const ins of instructions(text)) {
    const words = ins.text.split(/\s+/);
    if ((words[0] ?? '').toUpperCase() !== 'FROM') continue;
    const args = words.slice(1);
    const flags: string[] = [];
    while (args[0]?.startsWith('--')) flags.push(args.shift()!);
    const image = args[0];
    if (!image) throw new ContainerfileError(`line ${ins.line + 1}: FROM names no image`);
    let alias: string | undefined;
    if (args.length >= 3 && (args[1] ?? '').toUpperCase() === 'AS') alias = args[2]!.toLowerCase();
    else if (args.length > 1) throw new ContainerfileError(`line ${ins.line + 1}: cannot parse "${ins.text}"`);
    if (image.includes('$')) {
      throw new ContainerfileError(`line ${ins.line + 1}: FROM ${image} uses a variable; darch must know a recipe's parent before building`);
    }
    let target: FromTarget;
    if (image.startsWith(RECIPE_PREFIX)) {
      const recipe = image.slice(RECIPE_PREFIX.length);
      if (!recipe || recipe.includes(':') || recipe.includes('/')) {
        throw new ContainerfileError(`line ${ins.line + 1}: "${image}" should be darch:<recipe> (the tag comes from darch build -t)`);
      }
      target = { kind: 'recipe', recipe };
    } else if (image.toLowerCase() === 'scratch') target = { kind: 'scratch' };
    else if (stages.has(image.toLowerCase())) target = { kind: 'stage', stage: image.toLowerCase() };
    else target = { kind: 'external', ref: image };
    froms.push({ line: ins.line, span: ins.span, flags, image, alias, target });
    if (alias) stages.set(alias, target);
  }
  const last = froms.at(-1);
  if (!last) throw new ContainerfileError('it has no FROM line');
  let finalBase = last.target;
  for (let guard = 0; finalBase.kind === 'stage' && guard < 100; guard++) finalBase = stages.get(finalBase.stage) ?? { kind: 'scratch' };
  return { froms, finalBase };
}

/** Rewrite every FROM that names an image; `resolve` maps a target to what the builder should read. */
export function rewriteFroms(text: string, parsed: ParsedContainerfile, resolve: (t: FromTarget) => string | undefined): string {
  const lines = text.split(/\r?\n/);
  // Bottom-up so earlier line numbers stay valid while spans collapse.
  for (const f of [...parsed.froms].reverse()) {
    const image = resolve(f.target);
    if (image === undefined) continue;
    const rebuilt = ['FROM', ...f.flags, image, ...(f.alias ? ['AS', f.alias] : [])].join(' ');
    lines.splice(f.line, f.span, rebuilt, ...Array<string>(f.span - 1).fill(''));
  }
  return lines.join('\n');
}
