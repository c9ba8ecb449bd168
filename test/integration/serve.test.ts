/**
 * `darch serve` as an HTTP server and as an export, against staged images on this machine:
 * what boot clients ask (ranges, ETags, HEAD), hooks per tag and per machine, the menu
 * following the stage while the server runs, and the errors a user meets.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { extract as tarExtract } from 'tar-stream';
import { darch, darchOk, tempDir } from '../helpers/darch.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';
import { fakeStaged, stageDirOf } from '../helpers/fakestage.js';

async function untar(data: Buffer): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const x = tarExtract();
  const done = new Promise<void>((resolve, reject) => {
    x.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        if (h.type === 'file') files.set(h.name, Buffer.concat(chunks).toString());
        next();
      });
    });
    x.on('finish', resolve);
    x.on('error', reject);
  });
  x.end(data);
  await done;
  return files;
}

describe('darch serve', () => {
  let root: string;
  let a: string;
  let b: string;
  let srv: ServeProcess;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    root = await tempDir({ after: (fn) => void cleanups.push(async () => fn()) }, 'darch-serve-');
    a = await fakeStaged(root, ['lab/os:1'], { created: new Date('2026-01-01') });
    b = await fakeStaged(root, ['lab/os:2', 'lab/os:latest'], { kernelparams: 'quiet', created: new Date('2026-02-01') });
    // Hook output as `darch hooks apply` leaves it, for lab/os:latest.
    const hooks = path.join(stageDirOf(root), 'live', b, 'hooks', 'lab+os@latest');
    await mkdir(path.join(hooks, '00000001_hostname'), { recursive: true });
    await writeFile(path.join(hooks, '00000001_hostname/hook'), 'run() { cp "$DARCH_HOOK_DIR/hostname" "$DARCH_ROOT_FS/etc/hostname"; }\n');
    await writeFile(path.join(hooks, '00000001_hostname/hostname'), 'everyone\n');
    const machines = path.join(root, 'etc/darch/machines');
    await mkdir(path.join(machines, '52:54:00:aa:bb:cc', 'hostname'), { recursive: true });
    await writeFile(path.join(machines, '52:54:00:aa:bb:cc', 'hostname/hostname'), 'pc-07\n');
    await mkdir(path.join(machines, '52:54:00:aa:bb:cc', 'motd'), { recursive: true });
    await writeFile(path.join(machines, '52:54:00:aa:bb:cc', 'motd/hook'), 'run() { echo hi > "$DARCH_ROOT_FS/etc/motd"; }\n');
    // A directory that is not named by a MAC: said at export, never served.
    await mkdir(path.join(machines, 'lab-pc-08'), { recursive: true });
    srv = await startServe(root, ['--no-first-stage']);
    cleanups.push(() => srv.stop());
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('serves menus newest first with absolute URLs and the sha256, and the files with ranges and ETags', async () => {
    assert.equal(srv.index.url, `http://10.0.2.100:${srv.port}`);
    assert.deepEqual(
      srv.index.images.map((i) => i.id),
      [b, a],
    );
    const grub = await (await fetch(`${`http://${srv.listen}`}/grub/grub.cfg`)).text();
    const first = /menuentry '([^']+)'/.exec(grub)?.[1];
    assert.equal(first, 'Darch: lab/os:2');
    const sum = (await import('node:crypto'))
      .createHash('sha256')
      .update(await readFile(path.join(stageDirOf(root), 'live', b, 'rootfs.squash')))
      .digest('hex');
    assert.match(grub, new RegExp(`darch_rootfs=http://10\\.0\\.2\\.100:${srv.port}/live/${b}/rootfs\\.squash darch_rootfs_sha256=${sum} `));
    assert.match(await (await fetch(`${`http://${srv.listen}`}/boot.ipxe`)).text(), /^#!ipxe/);

    const url = `${`http://${srv.listen}`}/live/${b}/rootfs.squash`;
    const whole = Buffer.from(await (await fetch(url)).arrayBuffer());
    const full = await fetch(url, { method: 'HEAD' });
    assert.equal(full.status, 200);
    assert.equal(Number(full.headers.get('content-length')), whole.length);
    const etag = full.headers.get('etag')!;
    assert.equal(etag, `"${(await import('node:crypto')).createHash('sha256').update(whole).digest('hex')}"`);
    // busybox wget -c resumes like this.
    const part = await fetch(url, { headers: { range: 'bytes=100-' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-${whole.length - 1}/${whole.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(100));
    assert.equal((await fetch(url, { headers: { range: `bytes=${whole.length}-` } })).status, 416);
    assert.equal((await fetch(url, { headers: { 'if-none-match': etag } })).status, 304);
    // If-Range with another validator: the whole file, not a piece of a different one.
    assert.equal((await fetch(url, { headers: { range: 'bytes=100-', 'if-range': '"other"' } })).status, 200);

    for (const p of [`/live/${b}/image.json`, `/live/${b}/meta.json`, '/live/nosuchid/rootfs.squash', '/etc/passwd', `/live/${b}/../../../etc/passwd`])
      assert.ok([400, 404].includes((await fetch(`${`http://${srv.listen}`}${p}`)).status), p);
    assert.equal((await fetch(`${`http://${srv.listen}`}/grub/grub.cfg`, { method: 'POST' })).status, 405);
  });

  it('sends the hooks of a tag, and a machine its own files over them by MAC; an unknown MAC gets 404', async () => {
    const own = await fetch(`${`http://${srv.listen}`}/live/${b}/hooks/lab+os@latest.tar`);
    assert.equal(own.status, 200);
    const ownFiles = await untar(Buffer.from(await own.arrayBuffer()));
    assert.equal(ownFiles.get('00000001_hostname/hostname'), 'everyone\n');

    const mine = await fetch(`${`http://${srv.listen}`}/live/${b}/hooks/lab+os@latest.52-54-00-aa-bb-cc.tar`);
    assert.equal(mine.status, 200);
    const mineFiles = await untar(Buffer.from(await mine.arrayBuffer()));
    assert.equal(mineFiles.get('00000001_hostname/hostname'), 'pc-07\n', "the machine's file replaces the image's");
    assert.match(mineFiles.get('00000001_hostname/hook') ?? '', /run\(\)/, "the image's hook script stays");
    assert.match(mineFiles.get('99999999_motd/hook') ?? '', /etc\/motd/, 'a hook of its own runs after the image hooks');

    assert.equal((await fetch(`${`http://${srv.listen}`}/live/${b}/hooks/lab+os@latest.52-54-00-00-00-01.tar`)).status, 404);
    // lab/os:1 has no hook output: nothing to send.
    assert.equal((await fetch(`${`http://${srv.listen}`}/live/${a}/hooks/lab+os@1.tar`)).status, 404);
  });

  it('follows the stage while it runs: a new image tagged is the menu default, a removed one is gone', async () => {
    const c = await fakeStaged(root, ['lab/os:latest', 'lab/os:3'], { created: new Date('2026-03-01') });
    const grub = await (await fetch(`${`http://${srv.listen}`}/grub/grub.cfg`)).text();
    assert.match(grub, new RegExp(`^\\tif linux \\(http,10\\.0\\.2\\.100:${srv.port}\\)/live/${c}/vmlinuz`, 'm'));
    assert.ok(grub.indexOf(`/live/${c}/`) < grub.indexOf(`/live/${b}/`), 'the newest image comes first');
    await darchOk(['stage', 'remove', 'lab/os:1'], { root });
    assert.equal((await fetch(`${`http://${srv.listen}`}/live/${a}/rootfs.squash`)).status, 404);
    assert.doesNotMatch(await (await fetch(`${`http://${srv.listen}`}/grub/grub.cfg`)).text(), new RegExp(a));
  });

  it('exports the same files for any web server: links to the staged files, hooks per machine, old images removed', async (t) => {
    const dir = path.join(await tempDir(t, 'darch-export-'), 'srv');
    const r = await darchOk(['serve', '--export', dir, '--url', 'http://192.168.1.10:8080/darch', '--no-first-stage', '--json'], { root });
    const res = r.json<{ images: string[]; warnings: string[] }>();
    assert.ok(res.images.includes(b));
    const grub = await readFile(path.join(dir, 'grub/grub.cfg'), 'utf8');
    assert.match(grub, /linux \(http,192\.168\.1\.10:8080\)\/darch\/live\//);
    const staged = await stat(path.join(stageDirOf(root), 'live', b, 'rootfs.squash'));
    const exported = await stat(path.join(dir, 'live', b, 'rootfs.squash'));
    assert.equal(exported.ino, staged.ino, 'a hard link, not a copy');
    // Staging hooks ran for every tag when the stage changed (the test before): lab/os:2 has the built-in hooks now.
    const mine = await untar(await readFile(path.join(dir, 'live', b, 'hooks', 'lab+os@2.52-54-00-aa-bb-cc.tar')));
    assert.equal(mine.get('00000001_hostname/hostname'), 'pc-07\n');
    assert.match(mine.get('99999999_motd/hook') ?? '', /etc\/motd/);
    assert.ok(
      res.warnings.some((w) => /lab-pc-08: not a MAC address, ignored/.test(w)),
      res.warnings.join('\n'),
    );
    const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
    assert.equal(index.url, 'http://192.168.1.10:8080/darch');

    await darchOk(['stage', 'remove', 'lab/os:2', 'lab/os:3'], { root });
    const again = (await darchOk(['serve', '--export', dir, '--url', 'http://192.168.1.10:8080/darch', '--no-first-stage', '--json'], { root })).json<{
      removed: string[];
      images: string[];
    }>();
    for (const id of again.removed) assert.ok(!(await readdir(path.join(dir, 'live'))).includes(id));
    assert.deepEqual((await readdir(path.join(dir, 'live'))).sort(), [...again.images].sort());
  });

  it('says what is wrong: an unknown image, a busy port, a URL clients cannot use, --export without --url', async () => {
    const unknown = await darch(['serve', 'no/such:image', '--listen', '127.0.0.1:0', '--json'], { root });
    assert.equal(unknown.code, 1);
    assert.equal(unknown.json().error.code, 'E_NOT_STAGED');

    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busyPort = (blocker.address() as { port: number }).port;
    const busy = await darch(['serve', '--listen', `127.0.0.1:${busyPort}`, '--json'], { root });
    blocker.close();
    assert.equal(busy.json().error.code, 'E_SERVE_LISTEN');
    assert.match(busy.stderr, /in use/);

    const badUrl = await darch(['serve', '--listen', '127.0.0.1:0', '--url', 'ftp://x/'], { root });
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /http or https/);

    const noUrl = await darch(['serve', '--export', '/tmp/x'], { root });
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /--export needs --url/);
  });

  it('stops on SIGTERM with status 0 (a service manager stopping it is not a failure)', async () => {
    const s = await startServe(root, ['--no-first-stage']);
    assert.equal(await s.stop('SIGTERM'), 0);
    assert.match(s.stderr(), /stopped/);
  });
});
