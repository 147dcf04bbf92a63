import { describe, expect, it } from 'vitest';
import { usedInodes } from '../../src/core/build/ext4.js';
import { bootIds, derivedUuid, sourceDateEpoch } from '../../src/core/bootable/ids.js';
import { rootInit, shellQuote } from '../../src/core/bootable/init-scripts.js';
import { checkEntrypoint, checkSystemd } from '../../src/core/bootable/plan.js';
import { ext4Size } from '../../src/core/build/ext4-size.js';
import type { Entry } from '../../src/core/model/entry.js';
import { parseSizeMiB } from '../../src/core/build/build-image.js';

const meta = { mode: 0o755, uid: 0, gid: 0, mtime: 1_600_000_000 };
const tree = (list: Partial<Entry>[]) => new Map(list.map((e) => [e.path!, { ...meta, type: 'dir', ...e } as Entry]));

const slim = tree([
  { path: '/' },
  { path: '/usr' },
  { path: '/usr/bin' },
  { path: '/usr/sbin' },
  { path: '/usr/sbin/nginx', type: 'file', size: 1000, blob: 'a' },
  { path: '/usr/bin/dash', type: 'file', size: 100, blob: 'b' },
  { path: '/bin', type: 'symlink', target: 'usr/bin' },
  { path: '/usr/bin/sh', type: 'symlink', target: 'dash' },
]);

describe('entrypoint and systemd checks', () => {
  it('accepts a program on PATH or by path, and the program a sh -c command starts', () => {
    expect(checkEntrypoint(slim, ['/bin/sh', '-c', "nginx -g 'daemon off;'"])).toEqual(['/bin/sh', '-c', "nginx -g 'daemon off;'"]);
    expect(checkEntrypoint(slim, ['/bin/sh', '-c', 'LANG=C exec /usr/sbin/nginx'])).toHaveLength(3);
    expect(checkEntrypoint(slim, ['/usr/sbin/nginx', '-g', 'daemon off;'])).toEqual(['/usr/sbin/nginx', '-g', 'daemon off;']);
  });

  it('names the missing program', () => {
    expect(() => checkEntrypoint(slim, ['/bin/sh', '-c', 'redis-server --port 80'])).toThrow(/entrypoint redis-server .* is not in the image/);
    expect(() => checkEntrypoint(slim, ['/usr/bin/python3', 'app.py'])).toThrow(/entrypoint \/usr\/bin\/python3 is not in the image/);
  });

  it('runs sh -c with aim\'s busybox when the image has no /bin/sh', () => {
    const noShell = tree([{ path: '/' }, { path: '/app', type: 'file', size: 1, blob: 'c' }]);
    expect(checkEntrypoint(noShell, ['/bin/sh', '-c', '/app --serve'])).toEqual(['/.aim/busybox', 'sh', '-c', '/app --serve']);
  });

  it('--init systemd needs /sbin/init to lead to systemd', () => {
    const withSystemd = tree([
      { path: '/' },
      { path: '/sbin', type: 'symlink', target: 'usr/sbin' },
      { path: '/usr' },
      { path: '/usr/sbin' },
      { path: '/usr/sbin/init', type: 'symlink', target: '../lib/systemd/systemd' },
      { path: '/usr/lib' },
      { path: '/usr/lib/systemd' },
      { path: '/usr/lib/systemd/systemd', type: 'file', size: 1, blob: 'd' },
    ]);
    expect(checkSystemd(withSystemd)).toBe('/sbin/init');
    expect(() => checkSystemd(slim)).toThrow(/has no systemd/);
  });
});

describe('reproducible ids, times and sizes', () => {
  it('derives stable, distinct, well-formed ids from the image id', () => {
    const a = bootIds('a'.repeat(64));
    expect(bootIds('a'.repeat(64))).toEqual(a);
    expect(bootIds('b'.repeat(64)).rootUuid).not.toBe(a.rootUuid);
    expect(new Set([a.diskGuid, a.espGuid, a.rootGuid, a.rootUuid, a.hashSeed]).size).toBe(5);
    expect(a.rootUuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.espVolumeId).toMatch(/^[0-9a-f]{8}$/);
    expect(derivedUuid('x', 'disk')).not.toBe(derivedUuid('x', 'esp-partition'));
  });

  it('takes the newest mtime as the artifact time, never before FAT\'s 1980', () => {
    expect(sourceDateEpoch([{ mtime: 1_700_000_000 }, { mtime: 1_600_000_000 }])).toBe(1_700_000_000);
    expect(sourceDateEpoch([{ mtime: 0 }])).toBe(315_619_200);
  });

  it('sizes ext4 from the content plus headroom', () => {
    const small = ext4Size(slim.values(), 0, 0);
    const big = ext4Size([...slim.values(), { ...meta, path: '/big', type: 'file', size: 100 * 1024 * 1024, blob: 'e' }], 0, 0);
    expect(big.mib - small.mib).toBeGreaterThanOrEqual(100);
    expect(ext4Size(slim.values(), 0, 64).mib - small.mib).toBe(64);
  });

  it('reads used inodes from dumpe2fs', () => {
    const dump = 'Inode count:              16\nInodes per group:         8\nGroup 0: (Blocks 0-7)\n  Free inodes: 4-8\nGroup 1: (Blocks 8-15)\n  Free inodes: 9, 11-15\n';
    expect(usedInodes(dump)).toEqual([1, 2, 3, 10, 16]);
  });

  it('parses --size', () => {
    expect(parseSizeMiB('512')).toBe(512);
    expect(parseSizeMiB('2G')).toBe(2048);
    expect(parseSizeMiB('300MiB')).toBe(300);
    expect(() => parseSizeMiB('big')).toThrow(/--size big/);
  });
});

describe('aim init script', () => {
  it('quotes the entrypoint for sh and supervises it', () => {
    expect(shellQuote("daemon off;")).toBe("'daemon off;'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    const script = rootInit(['/bin/sh', '-c', "nginx -g 'daemon off;'"]);
    expect(script).toContain(`    /bin/sh -c 'nginx -g '\\''daemon off;'\\'''\n`);
    expect(script).toMatch(/udhcpc -i eth0/);
    expect(script).toMatch(/restarting in 1 s/);
  });
});

describe('kernel in the image', () => {
  it('finds the newest /boot/vmlinuz-* whose modules are indexed, through merged-usr symlinks', async () => {
    const { findKernel } = await import('../../src/core/bootable/kernel.js');
    const withKernel = tree([
      { path: '/' },
      { path: '/boot' },
      { path: '/boot/vmlinuz-6.1.0-9-amd64', type: 'file', size: 1, blob: 'k1' },
      { path: '/boot/vmlinuz-6.1.0-10-amd64', type: 'file', size: 1, blob: 'k2' },
      { path: '/boot/vmlinuz-6.9.0-1-amd64', type: 'file', size: 1, blob: 'k3' },
      { path: '/lib', type: 'symlink', target: 'usr/lib' },
      { path: '/usr' },
      { path: '/usr/lib' },
      { path: '/usr/lib/modules' },
      { path: '/usr/lib/modules/6.1.0-9-amd64' },
      { path: '/usr/lib/modules/6.1.0-9-amd64/modules.dep', type: 'file', size: 1, blob: 'd1' },
      { path: '/usr/lib/modules/6.1.0-10-amd64' },
      { path: '/usr/lib/modules/6.1.0-10-amd64/modules.dep', type: 'file', size: 1, blob: 'd2' },
      // a kernel without indexed modules is not bootable by aim
      { path: '/usr/lib/modules/6.9.0-1-amd64' },
    ]);
    const k = findKernel(withKernel);
    expect(k?.version).toBe('6.1.0-10-amd64');
    expect(k?.modulesDir).toBe('/usr/lib/modules/6.1.0-10-amd64');
    expect(k?.vmlinuz.blob).toBe('k2');
    expect(findKernel(slim)).toBeUndefined();
  });
});
