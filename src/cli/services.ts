/**
 * The run's services, built once per run by makeContext (context.ts).
 * Each imports its implementation when first used, so a command that needs none of them
 * (most) does not load the registry client, the initramfs builder or the boot state readers.
 */
import type { Puller } from '../build/external.js';
import type { Config } from '../lib/config.js';
import type { DarchPaths } from '../lib/paths.js';
import type { Reporter } from '../lib/report.js';
import type { TrustSettings } from '../registry/pull.js';
import type { ConnectSettings } from '../registry/remote.js';
import type { ProtectionSource } from '../stage/store.js';
import type { StageStep } from '../stage/stage.js';

/**
 * What library code needs from other parts of darch, handed to it explicitly. They used to be
 * module-level registries filled in as import side effects, so a caller that skipped the
 * import (any `stageImage` outside `stage upload`) silently got less.
 */
export interface Services {
  /** How `darch build --pull` fetches an external base: the registry client. */
  puller: Puller;
  /** Staged ids retention, `stage remove` and `stage clean` keep besides the booted one. */
  protection: ProtectionSource[];
  /** What every stage runs before committing: darch's initramfs and the tags' hooks. */
  stageSteps: StageStep[];
  /** The signature policy every pull enforces (policy.json; none: anything goes), read once. */
  trust(): Promise<TrustSettings>;
}

/** The part of the run's context the services are made from (context.ts's Context has it). */
interface Base {
  paths: DarchPaths;
  config: Config;
  signal: AbortSignal;
  report: Reporter;
}

export function makeServices(c: Base): Services {
  let trust: Promise<TrustSettings> | undefined;
  const services: Services = {
    trust() {
      trust ??= (async () => {
        const { loadPolicy, policyFiles } = await import('../trust/policy.js');
        return { policy: await loadPolicy(policyFiles(c.paths)), root: c.paths.root };
      })();
      return trust;
    },
    async puller(store, ref, signal) {
      const { pullImage } = await import('../registry/pull.js');
      const { loadRegistriesConf } = await import('../registry/registries-conf.js');
      const registries = await loadRegistriesConf(c.paths);
      await pullImage(store, ref, {
        ...registryDefaults(c),
        signal,
        jobs: c.config.registry.jobs,
        report: c.report,
        registries,
        trust: await services.trust(),
      });
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
  return services;
}

/** Retention must never remove the default, previous or trial image of this machine's boot state. */
async function bootStateIds(paths: DarchPaths, config: Config): Promise<string[]> {
  const { bootStateIds: ids } = await import('../boot/bootstate.js');
  return ids(paths, config);
}

/** The registry settings config.toml gives, before any command-line flag. */
export function registryDefaults(c: Omit<Base, 'report'>): ConnectSettings {
  return {
    insecure: c.config.registry.insecure,
    configDir: c.paths.configDir,
    retries: c.config.registry.retries,
    timeoutSec: Math.max(1, c.config.registry.timeout),
    signal: c.signal,
  };
}
