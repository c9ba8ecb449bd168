/**
 * The run's services (see `Services` in context.ts), built once per run by makeContext.
 * Each imports its implementation when first used, so a command that needs none of them
 * (most) does not load the registry client, the initramfs builder or the boot state readers.
 */
import type { Config } from '../lib/config.js';
import type { DarchPaths } from '../lib/paths.js';
import type { ConnectSettings } from '../registry/remote.js';
import type { Context, Services } from './context.js';

type Base = Pick<Context, 'paths' | 'config' | 'signal' | 'report'>;

export function makeServices(c: Base): Services {
  return {
    async puller(store, ref, signal) {
      const { pullImage } = await import('../registry/pull.js');
      await pullImage(store, ref, { ...registryDefaults(c), signal, jobs: c.config.registry.jobs, report: c.report });
    },
    protection: [() => bootStateIds(c.paths, c.config)],
    stageSteps: [
      {
        name: 'darch-boot',
        async run(step) {
          const { bootStageStep } = await import('../boot/stage-step.js');
          await bootStageStep(c.paths, c.config).run(step);
        },
      },
    ],
  };
}

/** Retention must never remove the default, previous or trial image of this machine's boot state. */
async function bootStateIds(paths: DarchPaths, config: Config): Promise<string[]> {
  const { bootStateIds: ids } = await import('../boot/bootstate.js');
  return ids(paths, config);
}

/** The registry settings config.toml gives, before any command-line flag. */
export function registryDefaults(c: Pick<Context, 'paths' | 'config' | 'signal'>): ConnectSettings {
  return {
    insecure: c.config.registry.insecure,
    configDir: c.paths.configDir,
    retries: c.config.registry.retries,
    timeoutSec: Math.max(1, c.config.registry.timeout),
    signal: c.signal,
  };
}
