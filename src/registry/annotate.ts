/**
 * Change the annotations of what a tag points at, in the registry, without touching its
 * blobs: fetch the manifest (or index), set or remove keys, store it again under the same
 * tag. Used for rollout percentages, which widen an update without rebuilding or pulling.
 */
import { type Digest, sha256 } from '../oci/digest.js';
import { parseRef } from '../oci/reference.js';
import { fetchManifest } from './manifest.js';
import { putManifest, withAnnotations } from './push.js';
import { type ConnectSettings, connectFor, requireRegistry } from './remote.js';
import { DarchError } from '../lib/errors.js';

export interface AnnotateResult {
  reference: string;
  previous: Digest;
  digest: Digest;
  annotations: Record<string, string>;
}

export async function annotateRemote(input: string, set: Record<string, string | null>, opts: ConnectSettings): Promise<AnnotateResult> {
  const ref = parseRef(input);
  if (ref.digest) throw new DarchError('E_USAGE', `${input} names a digest: annotations change the digest, so name a tag`);
  const remote = requireRegistry(ref, input);
  const scopes = [`repository:${remote.repo}:pull,push`];
  const client = await connectFor(remote.host, opts);
  try {
    const top = await fetchManifest(client, remote.repo, ref.tag, scopes);
    const { bytes, annotations } = withAnnotations(top.bytes, set);
    await putManifest(client, remote.repo, ref.tag, bytes, top.mediaType, scopes);
    return {
      reference: `${remote.display}:${ref.tag}`,
      previous: top.digest,
      digest: sha256(bytes),
      annotations,
    };
  } finally {
    await client.close();
  }
}
