/**
 * Builder backends behind one interface. A backend turns one recipe into an image source
 * the ordinary importer reads (an OCI layout `oci:<outDir>:build`, or a docker-save
 * archive), so every backend's result lands in darch's store the same way.
 */
import type { ContainerfileRecipe, DarchRecipe } from '../recipes/discover.js';

export type BuilderKind = 'buildah' | 'podman' | 'docker';
export const BUILDER_KINDS: BuilderKind[] = ['buildah', 'podman', 'docker'];
/** The ref a backend gives its result inside the output layout. */
export const OUTPUT_REF = 'build';

export interface StepContext {
  /** Name used to prefix output lines. */
  prefix: string;
  signal: AbortSignal;
  /** Scratch path for the result (an OCI layout directory or archive the backend creates). */
  outDir: string;
  /** Labels for the image config (settings, plus darch's cache key). */
  labels: Record<string, string>;
  /** Environment persisted in the image config (recipe.toml env). */
  imageEnv: Record<string, string>;
  noCache: boolean;
}

export interface DarchStep extends StepContext {
  recipe: DarchRecipe;
  recipesDir: string;
  /** The parent image as an image source the builder reads, e.g. oci:/var/lib/darch/images:base:latest. */
  parentSource: string;
  /** Environment for the script only (-e, build args); not kept in the image. */
  runEnv: Record<string, string>;
}

export interface ContainerfileStep extends StepContext {
  recipe: ContainerfileRecipe;
  /** The Containerfile with FROM lines rewritten to image sources the builder reads. */
  containerfile: string;
  buildArgs: Record<string, string>;
  /** `-e` values: set with --env, so they persist in the image config. */
  env: Record<string, string>;
}

export interface Probe {
  kind: BuilderKind;
  usable: boolean;
  detail: string;
}

export interface Builder {
  readonly kind: BuilderKind;
  probe(): Promise<Probe>;
  /** How this builder names an image of darch's store in FROM (or `buildah from`). */
  imageSource(storeDir: string, ref: string, signal: AbortSignal): Promise<string>;
  /** Remove working containers and intermediate images a previous (killed) run left. */
  prepare(): Promise<void>;
  /** Returns the source to import (see importImage). */
  buildDarch(step: DarchStep): Promise<string>;
  buildContainerfile(step: ContainerfileStep): Promise<string>;
  /** Idempotent; runs even after a failure or Ctrl-C. */
  cleanup(): Promise<void>;
}

export class BuildStepError extends Error {
  constructor(
    readonly step: string,
    readonly exitStatus: number | string,
    readonly tail: string[],
  ) {
    super(`${step}: exit status ${exitStatus}`);
  }
}

/**
 * containers/image names an image read from `oci:DIR:REF` after DIR, so every segment of DIR
 * must be a valid reference path component: lower case, digits, and separators only between
 * them (`.local`, `My Files`, `a__b-` are not), and DIR cannot hold ':'. For other store paths
 * the builder reads the store through a symlink with a tame name in /tmp.
 */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export function tameStorePath(storeDir: string): boolean {
  return (
    storeDir.startsWith('/') &&
    storeDir
      .split('/')
      .filter(Boolean)
      .every((s) => COMPONENT.test(s))
  );
}

export async function ociStorePath(storeDir: string): Promise<string> {
  if (tameStorePath(storeDir)) return storeDir;
  const { createHash } = await import('node:crypto');
  const { readlink, symlink, rename } = await import('node:fs/promises');
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const link = `/tmp/darch-${uid}-store-${createHash('sha256').update(storeDir).digest('hex').slice(0, 16)}`;
  if ((await readlink(link).catch(() => undefined)) === storeDir) return link;
  const tmp = `${link}.${process.pid}`;
  await symlink(storeDir, tmp);
  await rename(tmp, link);
  return link;
}
