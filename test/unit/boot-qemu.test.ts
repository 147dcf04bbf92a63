import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultDevices, findBootArtifact, findEsp, qemuArgs, type VmSpec } from '../../src/run/qemu.js';
import { tempDir } from '../helpers/tmp.js';

const base: VmSpec = { artifact: { kind: 'disk', path: '/x/disk.vmdk', format: 'vmdk' }, dir: '/scratch', memoryMiB: 512, forwards: [{ host: 8080, guest: 80 }], accel: 'tcg', console: 'file' };
const devicesOf = (args: string[]) => args.filter((_, i) => args[i - 1] === '-device');

describe('QEMU command line', () => {
  it('virtio by default: virtio-blk disk, virtio-net NIC without option ROM', () => {
    expect(devicesOf(qemuArgs(base))).toEqual(['virtio-blk-pci,drive=d0', 'virtio-net-pci,netdev=n0,romfile=']);
  });

  it('vmware: the disk on a PVSCSI controller, a VMXNET3 NIC, and the EFI partition as a read-only firmware disk', () => {
    const args = qemuArgs({ ...base, devices: 'vmware', firmwareEsp: { offset: 1 << 20, size: 64 << 20 } });
    expect(devicesOf(args)).toEqual(['pvscsi,id=scsi0', 'scsi-hd,drive=d0,bus=scsi0.0', 'virtio-blk-pci,drive=esp', 'vmxnet3,netdev=n0,romfile=']);
    expect(args).toContain('file=/x/disk.vmdk,if=none,id=d0,format=vmdk,snapshot=on');
    expect(args).toContain(`if=none,id=esp,driver=raw,offset=${1 << 20},size=${64 << 20},file.driver=vmdk,file.file.driver=file,file.file.filename=/x/disk.vmdk,readonly=on`);
  });

  it('pxe: no disk, QEMU\'s TFTP serving the bundle, the NIC keeps its iPXE ROM; bios drops the UEFI firmware', () => {
    const pxe: VmSpec = { ...base, artifact: { kind: 'pxe', dir: '/x/pxe', bootfile: 'boot.ipxe' } };
    const uefi = qemuArgs(pxe);
    expect(devicesOf(uefi)).toEqual(['virtio-net-pci,netdev=n0']);
    expect(uefi).toContain('user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,tftp=/x/pxe,bootfile=boot.ipxe');
    expect(uefi.filter((a) => a.startsWith('if=pflash'))).toHaveLength(2);
    expect(uefi.some((a) => a.includes('id=d0'))).toBe(false);
    const bios = qemuArgs({ ...pxe, firmware: 'bios' });
    expect(bios.some((a) => a.startsWith('if=pflash'))).toBe(false);
    expect(bios).toContain('unix:/scratch/monitor.sock,server=on,wait=off');
  });

  it('network boot on a tap device: no disk, the MAC given, the NIC\'s iPXE ROM or (firmware) none', () => {
    const net: VmSpec = { ...base, forwards: [], artifact: { kind: 'network', rom: 'ipxe' }, tap: { ifname: 'tap7', mac: '52:54:00:00:00:07' } };
    const args = qemuArgs(net);
    expect(devicesOf(args)).toEqual(['virtio-net-pci,netdev=n0,mac=52:54:00:00:00:07']);
    expect(args).toContain('tap,id=n0,ifname=tap7,script=no,downscript=no');
    expect(args.some((a) => a.startsWith('user,'))).toBe(false);
    expect(devicesOf(qemuArgs({ ...net, artifact: { kind: 'network', rom: 'firmware' } }))).toEqual(['virtio-net-pci,netdev=n0,mac=52:54:00:00:00:07,romfile=']);
    // SeaBIOS mirrors its console (and iPXE's) to the serial log; OVMF does so by itself
    expect(qemuArgs({ ...net, firmware: 'bios' })).toContain('name=etc/sercon-port,file=/scratch/sercon-port');
    expect(qemuArgs(net).some((a) => a.includes('sercon'))).toBe(false);
  });

  it('nvme: the disk on an NVMe controller with its serial; user networking with its own network and guest forwards', () => {
    const args = qemuArgs({
      ...base,
      disk: { bus: 'nvme', serial: 'vol0123456789abcdef0' },
      userNet: { network: '169.254.0.0/16', guestForwards: [{ address: '169.254.169.254', port: 80, command: ['/usr/bin/node', '/x/bridge it.mjs', 'a,b'] }] },
    });
    expect(devicesOf(args)).toEqual(['nvme,drive=d0,serial=vol0123456789abcdef0', 'virtio-net-pci,netdev=n0,romfile=']);
    expect(args).toContain("user,id=n0,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:'/usr/bin/node' '/x/bridge it.mjs' 'a,,b',hostfwd=tcp:127.0.0.1:8080-:80");
  });

  it('an .ova boots on vmware devices unless told otherwise', async () => {
    expect(defaultDevices({ kind: 'ova', path: '/x/a.ova' })).toBe('vmware');
    expect(defaultDevices(base.artifact)).toBe('virtio');
  });
});

describe('EFI partition of a disk', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('aim-esp-');
  });
  afterAll(async () => tmp.cleanup());

  it('is read from the GPT through qemu-img, whatever the format; a disk without one is not bootable', async () => {
    const raw = join(tmp.dir, 'd.raw');
    await execa('truncate', ['-s', '80M', raw]);
    const table = 'label: gpt\nstart=2048, size=40960, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\nstart=43008, size=20480, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n';
    await execa('sfdisk', ['-q', raw], { input: table });
    const vmdk = join(tmp.dir, 'd.vmdk');
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
    expect(await findEsp({ kind: 'disk', path: vmdk, format: 'vmdk' }, tmp.dir)).toEqual({ offset: 2048 * 512, size: 40960 * 512 });
    const blank = join(tmp.dir, 'blank.raw');
    await execa('truncate', ['-s', '4M', blank]);
    await expect(findEsp({ kind: 'disk', path: blank, format: 'raw' }, tmp.dir)).rejects.toMatchObject({ code: 'E_NOT_BOOTABLE' });
    expect(await findBootArtifact(join(tmp.dir, 'd.vmdk'))).toEqual({ kind: 'disk', path: vmdk, format: 'vmdk' });
    // a directory with boot.ipxe is a PXE bundle, even next to a disk
    await execa('touch', [join(tmp.dir, 'boot.ipxe')]);
    expect(await findBootArtifact(tmp.dir)).toEqual({ kind: 'pxe', dir: tmp.dir, bootfile: 'boot.ipxe' });
  });
});
