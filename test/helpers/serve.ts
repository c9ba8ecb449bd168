/** `darch serve` started as a user starts it (the built executable), for tests that boot from it or ask it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { DARCH_BIN } from './darch.js';

export interface ServeProcess {
  child: ChildProcess;
  /** `127.0.0.1:PORT`: where this host reaches it. */
  listen: string;
  port: number;
  /** What `--json` printed: the served index (url, images, entries). */
  index: { listen: string; url: string; images: { id: string; tags: string[] }[] };
  stderr(): string;
  /** Stops it (SIGINT by default) and resolves with its exit status. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `darch --root ROOT serve --listen 127.0.0.1:0 --json ARGS…`, resolved once it listens. */
export async function startServe(root: string, args: string[] = []): Promise<ServeProcess> {
  const child = spawn(DARCH_BIN, ['--root', root, 'serve', '--listen', '127.0.0.1:0', '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const index = await new Promise<ServeProcess['index']>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      try {
        resolve(JSON.parse(out));
      } catch {
        // not the whole document yet
      }
    });
    void exited.then((code) => reject(new Error(`darch serve exited ${code} before it listened:\n${err}`)));
  });
  return {
    child,
    listen: index.listen,
    port: Number(index.listen.split(':').pop()),
    index,
    stderr: () => err,
    stop: (signal = 'SIGINT') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
