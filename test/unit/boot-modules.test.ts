import { describe, expect, it } from 'vitest';
import { moduleClosure, moduleName, parseModuleIndex, wantedModules } from '../../src/core/bootable/modules.js';

const index = parseModuleIndex({
  dep: [
    'kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
    'kernel/lib/crc16.ko:',
    'kernel/fs/mbcache.ko:',
    'kernel/fs/jbd2/jbd2.ko:',
    'kernel/crypto/crc32c_generic.ko:',
    'kernel/arch/x86/crypto/crc32c-intel.ko:',
    'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
    'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/acpi/button.ko:',
  ].join('\n'),
  softdep: 'softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c post: no-such-thing\n',
  alias: 'alias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\nalias pci:v00001AF4d* virtio_pci\n',
  builtin: 'kernel/drivers/input/evdev.ko\nkernel/drivers/scsi/sd_mod.ko\n',
});

describe('module closure', () => {
  it('names modules as the kernel does', () => {
    expect(moduleName('kernel/arch/x86/crypto/crc32c-intel.ko')).toBe('crc32c_intel');
    expect(moduleName('kernel/fs/ext4/ext4.ko.xz')).toBe('ext4');
  });

  it('loads dependencies and softdep pre modules first, the generic implementation of an alias', () => {
    const c = moduleClosure(index, ['ext4']);
    const names = c.load.map((m) => m.name);
    expect(names).toEqual(['crc32c_generic', 'crc16', 'mbcache', 'jbd2', 'ext4']);
    expect(c.load.at(-1)!.path).toBe('kernel/fs/ext4/ext4.ko');
    expect(c.builtin).toEqual([]);
  });

  it('orders shared dependencies once, before every user, and reports built-in modules', () => {
    const c = moduleClosure(index, ['virtio_blk', 'virtio_pci', 'evdev', 'sd-mod', 'button']);
    const names = c.load.map((m) => m.name);
    expect(names).toEqual(['virtio_ring', 'virtio', 'virtio_blk', 'virtio_pci_modern_dev', 'virtio_pci', 'button']);
    expect(c.builtin).toEqual(['evdev', 'sd_mod']);
  });

  it('refuses a module the kernel does not have', () => {
    expect(() => moduleClosure(index, ['ext4', 'no_such_driver'])).toThrow(/no_such_driver is neither a module of this kernel nor built into it/);
  });

  it('platform lists differ and take extras', () => {
    expect(wantedModules('qemu', [])).toContain('virtio_blk');
    expect(wantedModules('ec2', [])).toEqual(expect.arrayContaining(['nvme', 'ena', 'ext4']));
    expect(wantedModules('vmware', ['btrfs'])).toEqual(expect.arrayContaining(['vmw_pvscsi', 'vmxnet3', 'e1000', 'btrfs']));
    expect(wantedModules('ec2', [])).not.toContain('virtio_blk');
  });
});
