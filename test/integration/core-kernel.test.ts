import { execa } from 'execa';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buildInitramfs } from '../../src/core/bootable/initramfs.js';
import { resolveBootKernel } from '../../src/core/bootable/kernel.js';
import { wantedModules } from '../../src/core/bootable/modules.js';
import { resolveImage } from '../../src/core/query/resolve.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim } from '../helpers/cli.js';
import { kernelDebDir } from '../helpers/kernel.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  expect((await aim(['repo', 'init', '--repo', repo])).exitCode).toBe(0);
});
afterAll(async () => tmp.cleanup());

interface KernelJson {
  id: string;
  tags: string[];
  kernelVersion: string;
  package: string;
}

describe('aim core kernel', () => {
  it('imports Debian\'s kernel with an indexed module tree, and the same package gives the same image', async () => {
    const first = await aim<KernelJson>(['core', 'kernel', '--repo', repo, '--deb-dir', kernelDebDir]);
    expect(first.exitCode, first.stderr).toBe(0);
    const { kernelVersion, id } = first.json;
    expect(kernelVersion).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    expect(first.json.package).toBe(`linux-image-${kernelVersion}`);
    expect(first.json.tags).toEqual(['core/kernel:bookworm']);

    const r = await openRepository(repo);
    const paths = new Set((await r.catalog.entries(id)).map((e) => e.path));
    await r.close();
    expect(paths.has(`/boot/vmlinuz-${kernelVersion}`)).toBe(true);
    expect(paths.has(`/lib/modules/${kernelVersion}/modules.dep`)).toBe(true);
    expect([...paths].some((p) => p.endsWith('/virtio_blk.ko'))).toBe(true);

    const again = await aim<KernelJson>(['core', 'kernel', '--repo', repo, '--deb-dir', kernelDebDir, '--tag', 'core/kernel:again']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.json.id).toBe(id);
  }, 300_000);

  it('gives a small, reproducible initramfs with exactly the closure of the platform modules', async () => {
    const r = await openRepository(repo);
    try {
      const id = await resolveImage(r, 'core/kernel:bookworm');
      const entries = new Map((await r.catalog.entries(id)).map((e) => [e.path, e]));
      const kernel = await resolveBootKernel(r, { id, entries });
      const request = { kernel, modules: wantedModules('qemu', []), init: '/.aim/init', mtime: 1_700_000_000 };
      const one = await buildInitramfs(request, join(tmp.dir, 'one.img'));
      const two = await buildInitramfs(request, join(tmp.dir, 'two.img'));
      expect((await readFile(one.path)).equals(await readFile(two.path))).toBe(true);
      expect((await stat(one.path)).size).toBeLessThan(3 * 1024 * 1024);
      const order = one.modules;
      for (const [before, after] of [['virtio_ring', 'virtio_pci'], ['virtio', 'virtio_blk'], ['crc32c_generic', 'ext4'], ['jbd2', 'ext4'], ['failover', 'virtio_net']]) {
        expect(order.indexOf(before!), `${before} in ${order.join(' ')}`).toBeGreaterThanOrEqual(0);
        expect(order.indexOf(before!)).toBeLessThan(order.indexOf(after!));
      }
      expect(order).not.toContain('nvme');
      const cpio = join(tmp.dir, 'one.cpio');
      await execa('zstd', ['-d', '-q', one.path, '-o', cpio]);
      const list = (await execa('cpio', ['-i', '-t', '--quiet', '-F', cpio])).stdout.split('\n');
      expect(list).toContain('init');
      expect(list).toContain('bin/busybox');
      expect(list).toContain(`lib/modules/${kernel.version}/kernel/fs/ext4/ext4.ko`);
      expect(list.filter((n) => n.endsWith('.ko')).length).toBe(order.length);
      const ec2 = await buildInitramfs({ ...request, modules: wantedModules('ec2', ['vfat']) }, join(tmp.dir, 'ec2.img'));
      expect(ec2.modules).toEqual(expect.arrayContaining(['nvme', 'ena', 'vfat', 'ext4']));
      expect(ec2.modules).not.toContain('virtio_net');
    } finally {
      await r.close();
    }
  }, 120_000);

  it('refuses a bad tag before downloading anything', async () => {
    const bad = await aim<{ error: { code: string } }>(['core', 'kernel', '--repo', repo, '--deb-dir', kernelDebDir, '--tag', 'Not A Tag']);
    expect(bad.exitCode).toBe(2);
  });
});
