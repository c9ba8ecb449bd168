/**
 * The Debian mirror this machine's apt already uses, so darch (and its tests) fetch from
 * wherever the administrator pointed apt, never from a host of our choosing.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';

/** The first plain Debian archive URI in apt's sources (deb822 or one-line format), or undefined. */
export async function debianMirror(aptDir = '/etc/apt'): Promise<string | undefined> {
  const files = [path.join(aptDir, 'sources.list')];
  const d = path.join(aptDir, 'sources.list.d');
  for (const f of (await readdir(d).catch(() => [] as string[])).sort()) {
    if (f.endsWith('.sources') || f.endsWith('.list')) files.push(path.join(d, f));
  }
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const uri = /^URIs:\s*(\S+)/.exec(line)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/.exec(line)?.[1];
      if (uri && /^https?:\/\//.test(uri) && !/security|updates|backports/.test(uri)) return uri;
    }
  }
  return undefined;
}
