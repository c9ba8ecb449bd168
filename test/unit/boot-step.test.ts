/** The stage step's choice of initramfs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseInitramfs, type BootStepContext } from '../../src/boot/stage-step.js';

function ctx(files: string[], initramfs?: string): BootStepContext {
  return {
    id: 'x',
    dir: '/nowhere',
    tags: ['a:1'],
    boot: { kernel: { path: '/boot/vmlinuz' }, ...(initramfs ? { initramfs: { path: initramfs } } : {}) },
    index: { lookup: (p: string) => (files.includes(p) ? { path: p } : undefined) },
  };
}

describe('which initramfs a staged image boots with', () => {
  it('auto keeps an image initramfs only when the image has a darch hook for it', () => {
    assert.equal(chooseInitramfs('auto', ctx(['usr/lib/modules'], '/boot/initrd.img')), 'darch');
    // No modules to build darch's from: the image's own is the better bet.
    assert.equal(chooseInitramfs('auto', ctx([], '/boot/initrd.img')), 'image');
    assert.equal(chooseInitramfs('auto', ctx(['usr/share/initramfs-tools/scripts/darch'], '/boot/initrd.img')), 'image');
    assert.equal(chooseInitramfs('auto', ctx(['usr/share/initramfs-tools/scripts/darch'])), 'darch');
    assert.equal(chooseInitramfs('darch', ctx(['usr/share/initramfs-tools/scripts/darch'], '/boot/initrd.img')), 'darch');
    // darch's dracut module (darch initramfs dracut-install) in an image with modules.
    assert.equal(chooseInitramfs('auto', ctx(['usr/lib/modules', 'usr/lib/dracut/modules.d/90darch/module-setup.sh'], '/boot/initrd.img')), 'image');
    assert.equal(chooseInitramfs('image', ctx([], '/boot/initrd.img')), 'image');
    assert.throws(() => chooseInitramfs('image', ctx([])), /the image has no initramfs/);
  });
});
