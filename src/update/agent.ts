/**
 * The update agent: follow one image in a registry and take each new version as far as
 * `[update] policy` allows: check → download (pull: blobs already here are skipped, partial
 * ones resume) → stage (under a tag of its own) → apply (arm a trial). What is "current" is
 * read where it lives (the staged images' meta.json, the boot state), never cached, so a
 * run interrupted anywhere simply finds the work done so far on the next one.
 *
 * Each staged update gets its own tag (`NAME:TAG-<digest12>`): menu entries and the boot
 * state name images by tag, so moving one tag from the running image to the new one would
 * make the default boot the untried image.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { changeState, readState } from '../boot/bootstate.js';
import { reconcileBoot } from '../boot/reconcile.js';
import { resolveImage, type BootTarget } from '../boot/target.js';
import { armTrial, trialKernelArgs, type BootState, type Transition } from '../boot/trial/state.js';
import { resolveOnDisk } from '../disk/defaults.js';
import { addToDisk, listDisk } from '../disk/edit.js';
import { diskTarget } from '../disk/target.js';
import type { Config } from '../lib/config.js';
import { DarchError } from '../lib/errors.js';
import { withLock } from '../lib/lock.js';
import { ensureWritable } from '../lib/writable.js';
import type { DarchPaths } from '../lib/paths.js';
import { type Reporter, silentReporter } from '../lib/report.js';
import { hostPlatform } from '../oci/mediatypes.js';
import { parseRef, refString } from '../oci/reference.js';
import type { ImageStore } from '../oci/store.js';
import { inspectRemote, type RemoteImage } from '../registry/inspect.js';
import { parsePlatform } from '../registry/manifest.js';
import { type PullResult, pullImage, type TrustSettings } from '../registry/pull.js';
import type { RegistriesConf } from '../registry/registries-conf.js';
import type { ConnectSettings } from '../registry/remote.js';
import { bootedId } from '../stage/protect.js';
import { type StageStep, stageImage } from '../stage/stage.js';
import type { StagedImage, StageStore } from '../stage/store.js';
import { inRollout, readMachineId, rolloutBucket, rolloutPercent } from './rollout.js';

export interface UpdateDeps {
  paths: DarchPaths;
  config: Config;
  imageStore: ImageStore;
  stageStore: StageStore;
  steps: StageStep[];
  registry: ConnectSettings;
  /** registries.conf: mirrors for checks and downloads alike. */
  registries?: RegistriesConf;
  /** The signature policy downloads must pass (none given: not checked). */
  trust?: TrustSettings;
  jobs: number;
  /** This machine's boot target (ESP + stage). */
  target: () => Promise<BootTarget>;
  lockTimeoutSec: number;
  report?: Reporter;
  signal?: AbortSignal;
}

/**
 * up-to-date: this machine runs it, or boots it next; armed: staged and armed as the next
 * boot's trial; failed-trial: its trial failed before (not taken again by itself); deferred: not
 * yet for this machine (rollout); available / downloaded / staged: how far it got here.
 */
export type UpdateStatus = 'up-to-date' | 'armed' | 'failed-trial' | 'deferred' | 'available' | 'downloaded' | 'staged';

/** Statuses that mean "there is an update this machine should take" (check's exit 100). */
export const PENDING: ReadonlySet<UpdateStatus> = new Set(['available', 'downloaded', 'staged']);

export interface ImageInfo {
  id: string;
  tags: string[];
  digest?: string;
  version?: string;
}

export interface CheckResult {
  image: string;
  status: UpdateStatus;
  message: string;
  remote: { digest: string; config: string; platform: string; version?: string };
  rollout: { percent: number | null; bucket: number | null; selected: boolean };
  /** What this machine runs (the booted image), else what it boots next (the default). */
  current: ImageInfo | null;
  /** The staged image that holds the remote image, if one does. */
  staged: ImageInfo | null;
}

/** The image to follow: the argument, else `[update] image`. */
export function followedImage(config: Config, given?: string): string {
  const image = given?.trim() || config.update.image.trim();
  if (!image) {
    throw new DarchError('E_UPDATE_NO_IMAGE', 'no image to follow', {
      hint: 'set image = "REGISTRY/NAME:TAG" under [update] in config.toml, or name one: darch update check REGISTRY/NAME:TAG',
    });
  }
  const ref = parseRef(image);
  if (!ref.domain) {
    throw new DarchError('E_UPDATE_NO_IMAGE', `"${image}" names no registry`, { hint: 'follow a full reference, e.g. registry.example/os/desktop:stable' });
  }
  return refString(ref);
}

/** The tag a staged update gets: the followed tag plus the manifest digest's first 12 hex digits. */
export function updateTag(image: string, digest: string): string {
  const ref = parseRef(image);
  const tag = `${ref.tag ?? 'latest'}`.slice(0, 100);
  return refString({ ...ref, digest: undefined, tag: `${tag}-${digest.replace(/^sha256:/, '').slice(0, 12)}` });
}

/** "desktop 42": the repository's last name and the version (or digest) of a staged or remote image. */
export function labelOf(image: string, info: { version?: string; digest?: string } | null | undefined): string {
  const name = parseRef(image).path.split('/').pop() ?? image;
  if (!info) return name;
  return `${name} ${info.version ?? (info.digest ? info.digest.replace(/^sha256:/, '').slice(0, 12) : '')}`.trim();
}

function infoOf(img: StagedImage): ImageInfo {
  const s = img.meta?.source;
  return { id: img.id, tags: img.tags, ...(s?.digest ? { digest: s.digest } : {}), ...(s?.version ? { version: s.version } : {}) };
}

/** Whether a staged image is the remote image (by manifest or config digest). */
export function holds(img: StagedImage, remote: { digest: string; config: string }): boolean {
  const s = img.meta?.source;
  return Boolean(s && (s.digest === remote.digest || s.manifestDigest === remote.digest || (s.config && s.config === remote.config)));
}

interface Local {
  staged: StagedImage[];
  booted?: string;
  state?: BootState;
  stateError?: string;
}

async function localView(d: UpdateDeps): Promise<Local> {
  const staged = await d.stageStore.list();
  const booted = await bootedId();
  try {
    const { state } = await readState(await d.target());
    return { staged, booted, state };
  } catch (err) {
    return { staged, booted, stateError: (err as Error).message };
  }
}

function platformOf(config: Config) {
  return config.update.platform ? parsePlatform(config.update.platform) : hostPlatform();
}

/** Where this machine stands with the followed image: compares the registry's digest with what is staged and booted. */
export async function checkUpdate(d: UpdateDeps, image: string): Promise<CheckResult & { remoteImage: RemoteImage }> {
  const report = d.report ?? silentReporter;
  report.step(`checking ${image}`);
  const remote = await inspectRemote(image, { ...d.registry, platform: platformOf(d.config), registries: d.registries, report });
  return { ...(await classify(d, image, remote)), remoteImage: remote };
}

/** What an image (from the registry, or from a bundle or layout brought by hand) is to this machine. */
export async function classify(
  d: UpdateDeps,
  image: string,
  remote: { digest: string; config: string; platform?: string; version?: string; annotations?: Record<string, string> },
): Promise<CheckResult> {
  const local = await localView(d);
  const machineId = await readMachineId(d.paths.root);
  const percent = rolloutPercent(remote.annotations);
  const selected = inRollout(machineId, remote.config, percent);
  const rollout = {
    percent: percent ?? null,
    bucket: percent !== undefined && machineId ? Math.round(rolloutBucket(machineId, remote.config) * 100) / 100 : null,
    selected,
  };
  const byId = (id: string | undefined) => (id ? local.staged.find((s) => s.id === id) : undefined);
  const currentImg = byId(local.booted) ?? byId(local.state?.default?.stage);
  const matches = local.staged.filter((s) => holds(s, remote));
  const ids = new Set(matches.map((m) => m.id));
  const pick = (id: string | undefined) => (id && ids.has(id) ? byId(id) : undefined);
  const label = labelOf(image, remote);
  let status: UpdateStatus;
  let message: string;
  let staged = pick(local.booted) ?? pick(local.state?.default?.stage) ?? pick(local.state?.trial?.stage) ?? matches[0];
  if (pick(local.booted)) {
    status = 'up-to-date';
    message = `${label} is running`;
  } else if (pick(local.state?.default?.stage)) {
    status = 'up-to-date';
    message = `${label} boots next (it is the default)`;
  } else if (pick(local.state?.trial?.stage)) {
    status = 'armed';
    message = `${label} is staged and armed: the next boot tries it`;
  } else if (matches.length && matches.every((m) => local.state?.bad.includes(m.id))) {
    status = 'failed-trial';
    message = `${label} failed to start before; waiting for a newer image`;
  } else if (!selected) {
    status = 'deferred';
    staged = undefined;
    message = `${label} is rolled out to ${percent} % of machines, not yet to this one (its share: ${rollout.bucket ?? 'no machine-id'})`;
  } else if (matches.length) {
    status = 'staged';
    message = `${label} is staged (${matches[0]?.tags.join(', ') || matches[0]?.id}) but not armed`;
  } else if (await storeHas(d.imageStore, image, remote.digest)) {
    status = 'downloaded';
    message = `${label} is downloaded, not staged`;
  } else {
    status = 'available';
    message = `${label} is available`;
  }
  return {
    image,
    status,
    message,
    remote: { digest: remote.digest, config: remote.config, platform: remote.platform ?? '', ...(remote.version ? { version: remote.version } : {}) },
    rollout,
    current: currentImg ? infoOf(currentImg) : null,
    staged: staged ? infoOf(staged) : null,
  };
}

async function storeHas(store: ImageStore, image: string, digest: string): Promise<boolean> {
  try {
    return (await store.resolveImage(image)).manifestDigest === digest;
  } catch {
    return false;
  }
}

/**
 * Pull the followed image into the image store: blobs already there are skipped, partial ones
 * resume. With the digest a check found, exactly that manifest is fetched (by digest: a
 * pull-through mirror answers it from its cache, and a tag moved since the check changes
 * nothing), stored under the followed name.
 */
export async function downloadUpdate(d: UpdateDeps, image: string, digest?: string): Promise<PullResult> {
  return pullImage(d.imageStore, digest ? `${image}@${digest}` : image, {
    name: image,
    ...d.registry,
    platform: platformOf(d.config),
    registries: d.registries,
    ...(d.trust ? { trust: d.trust } : {}),
    jobs: d.jobs,
    report: d.report,
    signal: d.signal,
  });
}

export interface StagedUpdate extends ImageInfo {
  tag: string;
  /** False when an earlier run (or a person) had staged it already. */
  fresh: boolean;
}

/** Stage the downloaded image under its update tag, unless a staged image already holds it (or `remote`, the image the registry serves). */
export async function stageUpdate(d: UpdateDeps, image: string, from = image, remote?: { digest: string; config: string }): Promise<StagedUpdate> {
  // Staged already (perhaps from a delta, with nothing in the image store): by what the registry serves.
  let want = remote;
  let local: Awaited<ReturnType<typeof d.imageStore.resolveImage>> | undefined;
  if (!want) {
    local = await d.imageStore.resolveImage(from);
    want = { digest: local.manifestDigest, config: local.configDigest };
  }
  const have = (await d.stageStore.list()).find((s) => holds(s, want));
  if (have?.tags.length) {
    // A run cut off between staging and writing the boot side (menu, entries, ESP kernels)
    // left an image the boot loader does not know: arming it would fail, now and every run.
    await reconcileBoot(d.paths, d.config, d.lockTimeoutSec, d.report);
    return { ...infoOf(have), tag: have.tags[0] as string, fresh: false };
  }
  const resolved = local ?? (await d.imageStore.resolveImage(from));
  const tag = updateTag(image, resolved.manifestDigest);
  const res = await stageImage(d.imageStore, d.stageStore, from, {
    tags: [tag],
    force: true,
    compressor: d.config.stage.compression,
    keep: d.config.stage.keep,
    verity: d.config.stage.verity,
    steps: d.steps,
    signal: d.signal,
    report: d.report,
  });
  await reconcileBoot(d.paths, d.config, d.lockTimeoutSec, d.report);
  return {
    id: res.id,
    tags: res.tags,
    digest: res.meta.source.digest,
    ...(res.meta.source.version ? { version: res.meta.source.version } : {}),
    tag,
    fresh: true,
  };
}

export interface ApplyResult {
  target: string;
  changed: boolean;
  message: string;
  stage: string;
  tag: string;
  tries: number;
}

/** Arm the staged update as the next boot's trial, here or on a disk (which gets the image first if it lacks it). */
export async function armUpdate(d: UpdateDeps, staged: StagedUpdate, opts: { disk?: string; force?: boolean } = {}): Promise<ApplyResult> {
  const tries = d.config.update.tries || d.config.boot.tries;
  const args = trialKernelArgs(d.config.boot);
  let t: BootTarget;
  let resolve: (images: { id: string; tags: string[] }[]) => ReturnType<typeof resolveImage>;
  if (opts.disk) {
    const disk = opts.disk;
    const listing = await listDisk(disk, d.lockTimeoutSec);
    if (!listing.images.some((i) => i.id === staged.id)) await addToDisk(d.paths, disk, [staged.tag], { lockTimeoutSec: d.lockTimeoutSec, report: d.report });
    t = await diskTarget(disk, d.lockTimeoutSec);
    resolve = (images) => resolveOnDisk(images, staged.tag, disk);
  } else {
    t = await d.target();
    resolve = (images) => resolveImage(images, staged.tag);
  }
  const res = await changeState(t, (s, images): Transition => {
    if (s.default?.stage === staged.id) return { state: s, changed: false, message: `${staged.tag} is already the default image` };
    if (s.trial?.stage === staged.id) return { state: s, changed: false, message: `${staged.tag} is already armed (${s.tries} tries left)` };
    return armTrial(s, resolve(images), tries, { args, force: opts.force });
  });
  for (const w of res.warnings) d.report?.warn(w);
  if (res.transition.state.trial?.stage === staged.id) await t.clearFailure(staged.id).catch(() => undefined);
  return { target: t.label, changed: res.transition.changed, message: res.transition.message, stage: staged.id, tag: staged.tag, tries };
}

/** One update step at a time on a machine: the timer's run and a person's command never interleave. */
export async function withUpdateLock<T>(d: Pick<UpdateDeps, 'paths' | 'lockTimeoutSec' | 'report'>, fn: () => Promise<T>): Promise<T> {
  await ensureWritable(d.paths.stateDir, { root: d.paths.root, report: d.report });
  await mkdir(d.paths.stateDir, { recursive: true });
  return withLock(path.join(d.paths.stateDir, 'update.lock'), 'another update run', d.lockTimeoutSec, fn);
}
