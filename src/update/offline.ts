/**
 * `darch update apply --from FILE|DIR`: an update that comes on a USB stick or an rsync
 * drop instead of from the registry. Four forms: a stage bundle (`darch stage export`), a
 * delta against an image the machine has staged (`darch delta create`), an OCI image layout
 * directory, an OCI or docker archive. Each goes through the checks of its importer (every
 * blob against its digest; every file of a bundle against the bundle's and meta.json's
 * sha256; a delta's base, rebuilt root and squashfs) before anything is staged, then the same
 * classification and arming as a network update: an image the machine runs or boots next
 * changes nothing, one whose trial failed is refused without --force.
 */
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { reconcileBoot } from '../boot/reconcile.js';
import { DarchError, fsError, isErrno } from '../lib/errors.js';
import { detectFormat, importImage } from '../oci/importer.js';
import { BUNDLE_MANIFEST, importBundle } from '../stage/bundle.js';
import { deltaImage, readDeltaHeader } from '../stage/delta.js';
import { stageDelta } from './delta.js';
import { DELTA_JSON } from '../stage/delta-json.js';
import { policyImageOf, requirementsFor } from '../trust/policy.js';
import { readDetached } from '../trust/detached.js';
import { acceptsUnsigned, verifyBundle } from '../trust/verify.js';
import { type ApplyResult, type CheckResult, type StagedUpdate, type UpdateDeps, armUpdate, classify, holds, stageUpdate, updateTag } from './agent.js';

const VERSION_KEY = 'org.opencontainers.image.version';

export type OfflineKind = 'bundle' | 'delta' | 'oci-layout' | 'oci-archive' | 'docker-archive';

export interface OfflineResult {
  from: string;
  kind: OfflineKind;
  check: CheckResult;
  staged: StagedUpdate | null;
  applied: ApplyResult | null;
}

/** The first member's name of a plain tar file (a stage bundle starts with darch-bundle.json). */
async function firstTarName(file: string): Promise<string | undefined> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    if (bytesRead < 512 || buf.subarray(257, 262).toString('latin1') !== 'ustar') return undefined;
    return buf.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
  } finally {
    await fh.close();
  }
}

export async function offlineKind(from: string): Promise<OfflineKind> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(from);
  } catch (err) {
    if (isErrno(err, 'ENOENT'))
      throw new DarchError('E_NOT_FOUND', `${from} does not exist`, { hint: 'is the USB stick mounted? give the bundle file or the OCI layout directory' });
    throw fsError(err, `cannot read ${from}`);
  }
  if (st.isDirectory()) {
    const layout = await stat(path.join(from, 'oci-layout')).catch(() => undefined);
    if (!layout)
      throw new DarchError('E_BAD_INPUT', `${from} is a directory but not an OCI image layout (no oci-layout file)`, {
        hint: 'give the layout directory itself, or a bundle file in it',
      });
    return 'oci-layout';
  }
  const first = await firstTarName(from);
  if (first === BUNDLE_MANIFEST) return 'bundle';
  if (first === DELTA_JSON) return 'delta';
  const format = await detectFormat(from).catch((err: unknown) => (err instanceof DarchError ? err.message : String(err)));
  if (format === 'oci-archive' || format === 'docker-archive') return format;
  throw new DarchError('E_BAD_INPUT', `${from} is not a stage bundle, a delta, an OCI layout or an OCI archive${format === 'rootfs' ? '' : ` (${format})`}`, {
    hint: 'make one with `darch stage export`, `darch delta create`, `skopeo copy … oci:DIR` or `skopeo copy … oci-archive:FILE`',
  });
}

/**
 * OCI layouts and archives carry no signatures darch can check yet (issue 15): where the
 * policy wants signatures for the followed image, such an update is refused before anything
 * of it is read into the stores, rather than let in unchecked.
 */
function refuseUnverifiable(d: UpdateDeps, image: string, from: string): void {
  if (!d.trust) return;
  const { img, display } = policyImageOf(image);
  if (acceptsUnsigned(d.trust.policy, img)) return;
  const where = `${d.trust.policy.file ?? 'the policy'} (${requirementsFor(d.trust.policy.policy, img).scope})`;
  throw new DarchError('E_UNTRUSTED', `${from} is refused: ${where} requires signatures for ${display}, and darch checks those of stage bundles only`, {
    hint: 'bring a signed stage bundle (darch stage export, darch sign NAME --bundle FILE), or update from the registry; nothing was read',
  });
}

/**
 * A bundle is judged as the followed image: its detached signatures (FILE.sig) must sign
 * the digest of its manifest, which lists every file's sha256, under the followed name.
 * Checked once the manifest is read and before any file is written.
 */
function bundleCheck(d: UpdateDeps, image: string, from: string): ((digest: string) => Promise<void>) | undefined {
  const trust = d.trust;
  if (!trust) return undefined;
  return async (digest) => {
    const [verdict] = await verifyBundle(trust.policy, trust.root, [image], digest, () => readDetached(from), from);
    d.report?.verbose(`signature policy ${verdict?.policy ?? '(none)'}, ${verdict?.scope}: accepted by ${verdict?.acceptedBy.join(', ')}`);
  };
}

export async function applyFrom(
  d: UpdateDeps,
  image: string,
  from: string,
  opts: { disk?: string; sourceRef?: string; force?: boolean; arm?: boolean } = {},
): Promise<OfflineResult> {
  const report = d.report;
  const kind = await offlineKind(from);
  const signed = kind === 'bundle' || kind === 'delta';
  const verifyBundle = signed ? bundleCheck(d, image, from) : undefined;
  if (!signed) refuseUnverifiable(d, image, from);
  report?.step(`reading ${kind === 'bundle' ? 'the stage bundle' : `the ${kind}`} ${from}`);
  let staged: StagedUpdate;
  let check: CheckResult;
  if (kind === 'delta') {
    const { info } = await readDeltaHeader(from);
    const target = deltaImage(info, from);
    const version = target.manifest.annotations?.[VERSION_KEY] ?? target.config.config?.Labels?.[VERSION_KEY];
    check = await classify(d, image, { digest: target.manifestDigest, config: target.configDigest, ...(version ? { version } : {}) });
    if (check.status === 'up-to-date' || check.status === 'armed') return { from, kind, check, staged: null, applied: null };
    const have = (await d.stageStore.list()).find((s) => holds(s, { digest: target.manifestDigest, config: target.configDigest }));
    if (have?.tags.length) {
      await reconcileBoot(d.paths, d.config, d.lockTimeoutSec, report);
      staged = { id: have.id, tags: have.tags, tag: have.tags[0] as string, fresh: false, digest: target.manifestDigest, ...(version ? { version } : {}) };
    } else {
      const { base: _b, ...s } = await stageDelta(d, image, from, undefined, () => readDetached(from), from);
      staged = s;
    }
  } else if (kind === 'bundle') {
    let source: { digest?: string; config?: string; version?: string } | undefined;
    let id = '';
    const res = await importBundle(d.stageStore, from, {
      keep: d.config.stage.keep,
      force: true,
      report,
      onManifest: (m) => {
        source = m.source;
        id = m.id;
      },
      tagsFor: (m) => [updateTag(image, m.source?.digest ?? m.id)],
      ...(verifyBundle ? { verify: verifyBundle } : {}),
    });
    await reconcileBoot(d.paths, d.config, d.lockTimeoutSec, report);
    check = await classify(d, image, { digest: source?.digest ?? id, config: source?.config ?? id, ...(source?.version ? { version: source.version } : {}) });
    staged = {
      id: res.id,
      tags: res.tags,
      tag: res.tags[0] as string,
      fresh: !res.alreadyStaged,
      ...(source?.digest ? { digest: source.digest } : {}),
      ...(source?.version ? { version: source.version } : {}),
    };
  } else {
    const source = kind === 'oci-layout' ? `oci:${from}${opts.sourceRef ? `:${opts.sourceRef}` : ''}` : from;
    const imported = await importImage(d.imageStore, source, image, {
      sourceRef: kind === 'oci-layout' ? undefined : opts.sourceRef,
      signal: d.signal,
      report,
    });
    const resolved = await d.imageStore.resolveImage(imported.name);
    const version = resolved.manifest.annotations?.[VERSION_KEY] ?? resolved.config.config?.Labels?.[VERSION_KEY];
    check = await classify(d, image, { digest: resolved.manifestDigest, config: resolved.configDigest, ...(version ? { version } : {}) });
    if (check.status === 'up-to-date' || check.status === 'armed') return { from, kind, check, staged: null, applied: null };
    staged = await stageUpdate(d, image, imported.name);
  }
  if (check.status === 'up-to-date') return { from, kind, check, staged, applied: null };
  if (check.status === 'failed-trial' && !opts.force) {
    throw new DarchError('E_TRIAL_BAD', `${check.message}: ${from} holds the image whose trial failed`, {
      hint: 'bring a newer image, or add --force to try this one again',
    });
  }
  if (opts.arm === false) return { from, kind, check, staged, applied: null };
  const applied = await armUpdate(d, staged, { disk: opts.disk, force: opts.force });
  return { from, kind, check, staged, applied };
}
