/**
 * OCI and Docker schema 2 manifests, indexes and image configs as darch reads them from
 * outside (a registry, an OCI layout, an archive) or from its store: the only parser. Loose
 * objects (fields darch does not use pass through untouched: manifests are stored as the
 * bytes that came), strict where darch relies on a value: descriptors' digests and sizes,
 * the lists it walks. Whoever reads says what a bad document is (the registry lied, the
 * archive is broken, the store is corrupt) through `problem`.
 */
import { DarchError } from '../lib/errors.js';
import type { ContractProblem } from '../lib/smallfs.js';
import * as z from '../lib/zod.js';
import type { ImageConfig, ImageIndex, ImageManifest } from './mediatypes.js';

// Built on first use (lib/zod.ts lazySchema): most runs read no manifest.
const schemas = z.lazySchema(() => {
  const strings = z.record(z.string(), z.string());

  // The OCI image spec's digest grammar; which algorithms darch fetches is oci/digest.ts's business.
  const digest = z.string().check(z.regex(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, 'not a digest (algorithm:hex)'));

  const PlatformSchema = z.looseObject({
    architecture: z.string(),
    os: z.string(),
    variant: z.optional(z.string()),
    'os.version': z.optional(z.string()),
  });

  const DescriptorSchema = z.looseObject({
    mediaType: z.string(),
    digest,
    size: z.number().check(z.int(), z.gte(0), z.lte(Number.MAX_SAFE_INTEGER)),
    annotations: z.optional(strings),
    platform: z.optional(PlatformSchema),
    urls: z.optional(z.array(z.string())),
  });

  const ManifestSchema = z.looseObject({
    schemaVersion: z.literal(2),
    mediaType: z.optional(z.string()),
    config: DescriptorSchema,
    layers: z.array(DescriptorSchema),
    annotations: z.optional(strings),
  });

  const IndexSchema = z.looseObject({
    schemaVersion: z.literal(2),
    mediaType: z.optional(z.string()),
    manifests: z.array(DescriptorSchema),
    annotations: z.optional(strings),
  });

  const ConfigSchema = z.looseObject({
    architecture: z.string(),
    os: z.string(),
    variant: z.optional(z.string()),
    created: z.optional(z.string()),
    author: z.optional(z.string()),
    config: z.optional(
      z.nullable(
        z.looseObject({
          Env: z.optional(z.nullable(z.array(z.string()))),
          Entrypoint: z.optional(z.nullable(z.array(z.string()))),
          Cmd: z.optional(z.nullable(z.array(z.string()))),
          WorkingDir: z.optional(z.string()),
          Labels: z.optional(z.nullable(strings)),
          User: z.optional(z.string()),
        }),
      ),
    ),
    rootfs: z.looseObject({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  });

  /** `manifest.json` of a `docker save` archive: one entry per image. */
  const DockerArchiveSchema = z.array(
    z.looseObject({
      Config: z.string(),
      RepoTags: z.optional(z.nullable(z.array(z.string()))),
      Layers: z.array(z.string()),
    }),
  );
  return { ManifestSchema, IndexSchema, ConfigSchema, DockerArchiveSchema };
});

export type DockerArchiveEntry = z.output<ReturnType<typeof schemas>['DockerArchiveSchema']>[number];

function parseWith<S extends z.core.$ZodType>(schema: S, doc: unknown, what: string, problem: ContractProblem): z.output<S> {
  const r = z.safeParse(schema, doc);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
  throw new DarchError(problem.code, `${what} is malformed${where}: ${issue?.message ?? 'invalid'}`, { hint: problem.hint });
}

/** JSON text → value, or `problem` naming `what`. */
export function parseJsonText(bytes: Uint8Array | string, what: string, problem: ContractProblem): unknown {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new DarchError(problem.code, `${what} is not valid JSON`, { hint: problem.hint });
  }
}

export function parseManifest(doc: unknown, what: string, problem: ContractProblem): ImageManifest {
  return parseWith(schemas().ManifestSchema, doc, what, problem) as ImageManifest;
}

export function parseIndex(doc: unknown, what: string, problem: ContractProblem): ImageIndex {
  return parseWith(schemas().IndexSchema, doc, what, problem) as ImageIndex;
}

export function parseConfig(doc: unknown, what: string, problem: ContractProblem): ImageConfig {
  return parseWith(schemas().ConfigSchema, doc, what, problem) as ImageConfig;
}

export function parseDockerArchiveManifest(doc: unknown, what: string, problem: ContractProblem): DockerArchiveEntry[] {
  return parseWith(schemas().DockerArchiveSchema, doc, what, problem);
}

/** The `mediaType` a document declares itself (the header may say otherwise), if any. */
export function declaredMediaType(doc: unknown): string | undefined {
  const mt = doc !== null && typeof doc === 'object' ? (doc as { mediaType?: unknown }).mediaType : undefined;
  return typeof mt === 'string' ? mt : undefined;
}

/** An index by its shape, for documents that declare no media type. */
export function looksLikeIndex(doc: unknown): boolean {
  return doc !== null && typeof doc === 'object' && 'manifests' in doc;
}
