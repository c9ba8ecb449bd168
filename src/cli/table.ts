/**
 * darch's top-level commands in help order: name, one-line description, and the module that
 * defines the rest, imported only when the command runs. `darch --help` and
 * `darch --version` read this table and load no command module (docs/ARCHITECTURE.md,
 * bench/startup.ts). Descriptions live here only: main.ts makes each command with them.
 */
import type { DefineCommand } from './globals.js';

export interface CommandEntry {
  name: string;
  description: string;
  load(): Promise<DefineCommand>;
}

export const COMMANDS: CommandEntry[] = [
  {
    name: 'demo',
    description: "run darch's main job on built-in defaults: example images → stage → disk → boot in qemu → update → rollback",
    load: async () => (await import('./commands/demo.js')).registerDemo,
  },
  {
    name: 'status',
    description: 'one screen: what booted (trial? fallback?), the boot state, what is staged, free space',
    load: async () => (await import('./commands/status.js')).registerStatus,
  },
  {
    name: 'images',
    description: 'manage the local image store (an OCI image layout)',
    load: async () => (await import('./commands/images.js')).registerImages,
  },
  {
    name: 'recipes',
    description: 'inspect a recipes directory: formats, parents, build order',
    load: async () => {
      const [recipes, build] = await Promise.all([import('./commands/recipes.js'), import('./commands/build.js')]);
      return (cmd, ctx) => {
        recipes.registerRecipes(cmd, ctx);
        build.registerRecipesBuild(cmd, ctx);
      };
    },
  },
  {
    name: 'build',
    description: 'build recipes into the image store, with every missing or stale ancestor first',
    load: async () => (await import('./commands/build.js')).registerBuild,
  },
  {
    name: 'update',
    description: 'follow an image in a registry: check, download, stage and try updates; rollouts',
    load: async () => (await import('./commands/update.js')).registerUpdate,
  },
  {
    name: 'hooks',
    description: 'stage hooks: per-machine files (fstab, hostname, machine-id, ssh keys) put into booted images',
    load: async () => (await import('./commands/hooks.js')).registerHooks,
  },
  {
    name: 'initramfs',
    description: "darch's universal initramfs (busybox + the image's own kernel modules)",
    load: async () => (await import('./commands/initramfs.js')).registerInitramfs,
  },
  {
    name: 'stage',
    description: 'staged images: squashfs root, kernel and initramfs ready to boot',
    load: async () => (await import('./commands/stage.js')).registerStage,
  },
  {
    name: 'serve',
    description: 'boot diskless machines: staged images over HTTP with GRUB and iPXE menus, or exported as files',
    load: async () => (await import('./commands/serve.js')).registerServe,
  },
  {
    name: 'delta',
    description: 'binary deltas between images: a few % of the image to stage the next version',
    load: async () => (await import('./commands/delta.js')).registerDelta,
  },
  {
    name: 'boot',
    description: 'boot menu and boot state: GRUB entries, trial boots with fallback, rollback',
    load: async () => {
      const [menu, trial] = await Promise.all([import('./commands/boot.js'), import('./commands/boot-trial.js')]);
      return (cmd, ctx) => {
        menu.registerBoot(cmd, ctx);
        trial.registerBootTrial(cmd, ctx);
      };
    },
  },
  {
    name: 'disk',
    description: 'bootable disks: GPT, an ESP with GRUB, and a darch partition with staged images',
    load: async () => (await import('./commands/disk.js')).registerDisk,
  },
  {
    name: 'vm',
    description: 'boot images in a virtual machine (qemu, UEFI)',
    load: async () => (await import('./commands/vm.js')).registerVm,
  },
  {
    name: 'doctor',
    description: 'check which tools and kernel features darch can use here',
    load: async () => (await import('./commands/doctor.js')).registerDoctor,
  },
  {
    name: 'login',
    description: 'store credentials for a registry (after checking them) where podman and skopeo find them too',
    load: async () => (await import('./commands/registry.js')).registerLogin,
  },
  {
    name: 'logout',
    description: 'forget the stored credentials for a registry',
    load: async () => (await import('./commands/registry.js')).registerLogout,
  },
  {
    name: 'keygen',
    description: 'make a signing key pair (cosign format: skopeo, podman and cosign use it too)',
    load: async () => (await import('./commands/trust.js')).registerKeygen,
  },
  {
    name: 'sign',
    description: 'sign an image in its registry, where skopeo, podman and cosign look for signatures',
    load: async () => (await import('./commands/trust.js')).registerSign,
  },
  {
    name: 'completion',
    description: 'print a completion script for bash, zsh or fish (generated from the commands themselves)',
    load: async () => (await import('./commands/completion.js')).registerCompletion,
  },
  {
    name: 'man',
    description: "print darch's man page (or a command group's), generated from its commands; man -l to read it",
    load: async () => (await import('./commands/man.js')).registerMan,
  },
];

/** Global options that take a value, so the token after them is not the command. */
const VALUE_OPTIONS = new Set(['--root', '--color']);

/** The top-level command argv runs (also for `darch help X`), so only its module is loaded. */
export function commandIn(argv: string[]): string | undefined {
  const words: string[] = [];
  for (let i = 0; i < argv.length && words.length < 2; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    words.push(a);
    if (a !== 'help') break;
  }
  return words[0] === 'help' ? words[1] : words[0];
}
