/**
 * Updates by delta (docs/DELTAS.md): stage the followed image from a delta instead of its
 * layers, when the registry holds one (darch delta push) that starts from an image this
 * machine has staged, or when one is brought by hand (update apply --from FILE.delta).
 *
 * A delta is an optimisation, never a requirement: anything that goes wrong on the registry
 * path (none attached, the base not staged, a registry error, a signature the policy does not
 * take, a rebuilt root that is not the promised one) is said in one warning and the caller
 * takes the layers, which are checked on their own. Only an interruption (Ctrl-C, the
 * service stopped) stops the run.
 */
import { reconcileBoot } from '../boot/reconcile.js';
import { DarchError } from '../lib/errors.js';
import { formatBytes } from '../lib/format.js';
import { silentReporter } from '../lib/report.js';
import { parseRef } from '../oci/reference.js';
import { type RemoteDelta, deltaSignatures, downloadDelta, findDelta } from '../registry/delta.js';
import { VERSION_KEY } from '../registry/inspect.js';
import { NO_REGISTRIES_CONF, sourcesFor } from '../registry/registries-conf.js';
import { connectFor } from '../registry/remote.js';
import type { RegistryClient } from '../registry/client.js';
import { applyDelta, deltaImage, readDeltaHeader } from '../stage/delta.js';
import { bootedId } from '../stage/protect.js';
import { policyImageOf } from '../trust/policy.js';
import { type Signature, verifyImage } from '../trust/verify.js';
import { readState } from '../boot/bootstate.js';
import { type StagedUpdate, type UpdateDeps, updateTag } from './agent.js';

export interface DeltaUse {
  /** Where it came from: the artifact's digest in the registry, or the file. */
  source: string;
  /** The staged image it started from. */
  base: string;
  bytesDownloaded: number;
  bytesResumed: number;
}

/**
 * Stage the delta in `file` under the update's tag, after checking that it rebuilds `remote`
 * (the image the check found) and that `signatures` (when a policy is set) vouch for it.
 */
export async function stageDelta(
  d: UpdateDeps,
  image: string,
  file: string,
  remote: { digest: string; config: string; version?: string } | undefined,
  signatures: () => Promise<Signature[]>,
  display: string,
): Promise<StagedUpdate & { base: string }> {
  const { info } = await readDeltaHeader(file);
  const target = deltaImage(info, file);
  if (remote && target.manifestDigest !== remote.digest && target.configDigest !== remote.config) {
    throw new DarchError('E_DELTA_MISMATCH', `${display} rebuilds ${target.manifestDigest}, not ${remote.digest}, the image ${image} is now`, {
      hint: 'stage the image from its layers; nothing was staged',
    });
  }
  const trust = d.trust;
  const res = await applyDelta(d.stageStore, file, {
    tags: [updateTag(image, remote?.digest ?? target.manifestDigest)],
    force: true,
    keep: d.config.stage.keep,
    verity: d.config.stage.verity,
    steps: d.steps,
    ...(trust
      ? {
          // The signature is over the delta's header, which commits to its patch and target.
          verify: async (digest: string) => {
            const { img, display: name } = policyImageOf(image);
            const v = await verifyImage(trust.policy, img, { digests: [digest], signatures, root: trust.root, display: `${display} (as ${name})` });
            d.report?.verbose(`signature policy ${v.policy ?? '(none)'}, ${v.scope}: accepted by ${v.acceptedBy.join(', ')}`);
          },
        }
      : {}),
    signal: d.signal,
    report: d.report,
  });
  await reconcileBoot(d.paths, d.config, d.lockTimeoutSec, d.report);
  const version = remote?.version ?? target.manifest.annotations?.[VERSION_KEY] ?? target.config.config?.Labels?.[VERSION_KEY];
  return {
    id: res.id,
    tags: res.tags,
    tag: res.tags[0] as string,
    fresh: true,
    digest: target.manifestDigest,
    ...(version ? { version } : {}),
    base: res.base,
  };
}

/** Image configs of the staged images a delta may start from: the running one first, then the default, then the rest. */
async function baseConfigs(d: UpdateDeps): Promise<string[]> {
  const staged = await d.stageStore.list();
  const booted = await bootedId();
  const def = await d
    .target()
    .then(async (t) => (await readState(t)).state.default?.stage)
    .catch(() => undefined);
  const rank = (id: string) => (id === booted ? 0 : id === def ? 1 : 2);
  const configs = staged
    .filter((s) => s.meta?.source?.config)
    .sort((a, b) => rank(a.id) - rank(b.id))
    .map((s) => s.meta?.source?.config as string);
  return [...new Set(configs)];
}

/**
 * Stage `remote` (the image `image` points at now) from a delta in its registry; undefined
 * when there is none to use, or it failed (said as a warning): the caller takes the layers.
 */
export async function stageFromRegistryDelta(
  d: UpdateDeps,
  image: string,
  remote: { digest: string; config: string; version?: string },
): Promise<{ staged: StagedUpdate; delta: DeltaUse } | undefined> {
  const report = d.report ?? silentReporter;
  if (!d.config.update.deltas) return undefined;
  const bases = await baseConfigs(d);
  if (!bases.length) return undefined;
  let sources: ReturnType<typeof sourcesFor>;
  try {
    sources = sourcesFor(parseRef(image), d.registries ?? NO_REGISTRIES_CONF);
  } catch {
    return undefined;
  }
  for (const s of sources) {
    let client: RegistryClient | undefined;
    try {
      client = await connectFor(s.host, d.registry, s.insecure);
      const found: RemoteDelta | undefined = await findDelta(client, s.repo, remote.digest, bases);
      if (!found) {
        report.verbose(`${s.host}/${s.repo}: no delta to ${remote.digest.slice(0, 19)} from an image staged here`);
        continue;
      }
      report.step(`downloading a delta of ${formatBytes(found.blob.size)} from ${s.host}/${s.repo} (instead of the layers)`);
      const progress = report.progress('delta', found.blob.size);
      const got = await downloadDelta(client, d.imageStore, s.repo, found, {
        retries: d.registry.retries,
        onBytes: (n) => progress.tick(n),
        signal: d.signal,
      }).finally(() => progress.done());
      const c = client;
      const staged = await stageDelta(
        d,
        image,
        got.file,
        remote,
        () => deltaSignatures(c, s.repo, found),
        `the delta ${found.digest.slice(0, 19)} in ${s.host}/${s.repo}`,
      );
      const { base, ...update } = staged;
      return { staged: update, delta: { source: `${s.host}/${s.repo}@${found.digest}`, base, bytesDownloaded: got.downloaded, bytesResumed: got.resumed } };
    } catch (err) {
      if (d.signal?.aborted || (err instanceof DarchError && err.code === 'E_ABORTED')) throw err;
      report.warn(`${s.host}/${s.repo}: the delta could not be used (${(err as Error).message}); taking the layers`);
      return undefined;
    } finally {
      await client?.close();
    }
  }
  return undefined;
}
