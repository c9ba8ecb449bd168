/**
 * zod for darch's schemas: `import * as z from '../lib/zod.js'` is zod/mini (functions,
 * tree-shaken: `z.optional(s)`, `s.check(z.minLength(1))`), with zod's English messages.
 * zod/mini loads no locale by itself, and classic zod (`import { z } from 'zod'`), which
 * does, puts all of it and every locale into the executable and costs tens of milliseconds
 * at each start. Importing zod through this module is what makes the messages English.
 * jitless: zod would compile each object schema into a function (`new Function`) on its
 * first parse; darch parses a file's schema once or a few times a run, where compiling
 * costs more than it saves (bench/startup.ts).
 */
import { en } from 'zod/locales';
import { config } from 'zod/mini';

config({ ...en(), jitless: true });

export * from 'zod/mini';

/**
 * A schema built the first time it is used. zod builds a schema's parts when it is
 * declared, and most runs (`darch status` on a machine with nothing staged, --help) never
 * read most files: declaring them all at load cost milliseconds of every start
 * (bench/startup.ts). `typeof X` of the schema is `ReturnType<typeof X>`.
 */
export function lazySchema<T>(build: () => T): () => T {
  let schema: T | undefined;
  return () => (schema ??= build());
}
