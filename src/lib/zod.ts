/**
 * zod for darch's schemas: `import * as z from '../lib/zod.js'` is zod/mini (functions,
 * tree-shaken: `z.optional(s)`, `s.check(z.minLength(1))`), with zod's English messages.
 * zod/mini loads no locale by itself, and classic zod (`import { z } from 'zod'`), which
 * does, puts all of it and every locale into the executable and costs tens of milliseconds
 * at each start. Importing zod through this module is what makes the messages English.
 */
import { en } from 'zod/locales';
import { config } from 'zod/mini';

config(en());

export * from 'zod/mini';
