/**
 * The recipe dependency graph: who inherits from whom, with Darch's checks (every local
 * parent exists, no cycles) and a deterministic build order (parents first, ties by name;
 * Darch's own order followed Go map iteration and changed from run to run).
 */
import { DarchError } from '../lib/errors.js';
import { discoverRecipes, parentLabel, type Recipe } from './discover.js';

export class RecipeGraph {
  private readonly byName: Map<string, Recipe>;
  readonly recipes: Recipe[];

  constructor(recipes: Recipe[]) {
    this.recipes = [...recipes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.byName = new Map(recipes.map((r) => [r.name, r]));
    this.checkParents();
    this.checkCycles();
  }

  static async load(dir: string): Promise<RecipeGraph> {
    return new RecipeGraph(await discoverRecipes(dir));
  }

  get names(): string[] {
    return this.recipes.map((r) => r.name);
  }

  get(name: string): Recipe {
    const r = this.byName.get(name.replace(/\/+$/, ''));
    if (!r) {
      throw new DarchError('E_RECIPE_NOT_FOUND', `no recipe named ${name}`, {
        hint: `recipes here: ${this.names.join(', ') || '(none)'}; choose the directory with -d`,
      });
    }
    return r;
  }

  private checkParents(): void {
    for (const r of this.recipes) {
      for (const d of r.deps) {
        if (!this.byName.has(d)) {
          const how = r.format === 'darch' ? `inherits "${d}"` : `has FROM darch:${d}`;
          throw new DarchError('E_RECIPE_PARENT_MISSING', `recipe ${r.name} ${how}, which is not a recipe in this directory`, {
            hint:
              r.format === 'darch'
                ? `for an image in the store write "external:${d}"; recipes here: ${this.names.join(', ')}`
                : `recipes here: ${this.names.join(', ')}`,
          });
        }
      }
    }
  }

  private checkCycles(): void {
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (n: string): void => {
      const s = state.get(n);
      if (s === 'done') return;
      if (s === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(n)), n];
        throw new DarchError('E_RECIPE_CYCLE', `recipes inherit in a cycle: ${cycle.join(' → ')}`, {
          hint: 'a recipe cannot be its own ancestor; change one "inherits" (or FROM darch:…) in the cycle',
          details: { cycle },
        });
      }
      state.set(n, 'visiting');
      stack.push(n);
      for (const d of [...(this.byName.get(n)?.deps ?? [])].sort()) visit(d);
      stack.pop();
      state.set(n, 'done');
    };
    for (const n of this.names) visit(n);
  }

  /** Ancestors nearest first, following the main parent; an external base last. */
  parents(name: string): string[] {
    const out: string[] = [];
    let r: Recipe | undefined = this.get(name);
    while (r) {
      out.push(parentLabel(r.parent));
      r = r.parent.kind === 'recipe' ? this.byName.get(r.parent.name) : undefined;
    }
    return out;
  }

  /** Recipes that build on this one directly. */
  children(name: string): string[] {
    const r = this.get(name);
    return this.recipes.filter((c) => c.deps.includes(r.name)).map((c) => c.name);
  }

  /**
   * The requested recipes and every local ancestor, parents first, ties by name (Kahn's
   * algorithm over the needed subgraph, always taking the smallest ready name).
   */
  buildOrder(requested: string[] = this.names): string[] {
    const needed = new Set<string>();
    const add = (n: string): void => {
      if (needed.has(n)) return;
      needed.add(n);
      for (const d of this.get(n).deps) add(d);
    };
    for (const n of requested) add(this.get(n).name);
    const pending = new Map<string, number>();
    for (const n of needed) pending.set(n, this.get(n).deps.length);
    const order: string[] = [];
    const ready = [...needed].filter((n) => pending.get(n) === 0).sort();
    while (ready.length) {
      const n = ready.shift()!;
      order.push(n);
      for (const c of this.recipes) {
        if (!needed.has(c.name) || !c.deps.includes(n)) continue;
        const left = (pending.get(c.name) ?? 0) - 1;
        pending.set(c.name, left);
        if (left === 0) {
          ready.push(c.name);
          ready.sort();
        }
      }
    }
    return order;
  }

  /** Roots (external images, scratch) with their recipe subtrees, for `recipes tree`. */
  tree(): TreeNode[] {
    const roots = new Map<string, TreeNode>();
    const node = (r: Recipe): TreeNode => ({
      label: r.name,
      children: this.recipes.filter((c) => c.parent.kind === 'recipe' && c.parent.name === r.name).map(node),
    });
    for (const r of this.recipes) {
      if (r.parent.kind === 'recipe') continue;
      const label = parentLabel(r.parent);
      let root = roots.get(label);
      if (!root) roots.set(label, (root = { label, children: [] }));
      root.children.push(node(r));
    }
    return [...roots.values()].sort((a, b) => a.label.localeCompare(b.label));
  }
}

export interface TreeNode {
  label: string;
  children: TreeNode[];
}

export function renderTree(nodes: TreeNode[]): string {
  const lines: string[] = [];
  const walk = (n: TreeNode, prefix: string, last: boolean, top: boolean): void => {
    lines.push(top ? n.label : `${prefix}${last ? '└── ' : '├── '}${n.label}`);
    const next = top ? '' : `${prefix}${last ? '    ' : '│   '}`;
    for (const [i, c] of n.children.entries()) walk(c, next, i === n.children.length - 1, false);
  };
  for (const n of nodes) walk(n, '', true, true);
  return lines.join('\n');
}
