import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BootableRequest } from '../../src/core/bootable/plan.js';
import { planPxeBoot } from '../../src/core/bootable/pxe-initrd.js';
import { buildImage } from '../../src/core/build/build-image.js';
import type { BuildResult } from '../../src/core/build/types.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { addBootableImage, FAKE_KERNEL_VERSION, putFile } from '../helpers/fake-kernel.js';
import { readNewcArchives } from '../helpers/newc.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
let request: BootableRequest;
let bundle: BuildResult;

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

beforeAll(async () => {
  tmp = await tempDir('aim-pxe-initrd-');
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
  const data = await putFile(repo, '/var.img', Buffer.alloc(8192, 'd'), { size: 4 * 2 ** 20, sparse: [[2 ** 20, 8192]], mode: 0o644 });
  const imageId = await addBootableImage(repo, [
    { path: '/console', type: 'char', mode: 0o600, uid: 0, gid: 5, mtime: 1_600_000_000, devMajor: 5, devMinor: 1 },
    data,
    { path: '/var.link', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtime: 0, target: '/var.img' },
  ]);
  request = { imageId, platform: 'qemu', modules: ['fakemod'], init: 'aim', entrypoint: ['/app'] };
  bundle = await buildImage(repo, { ...request, modules: [...request.modules], format: 'pxe', outDir: join(tmp.dir, 'bundle'), headroomMiB: 0 }, new RecordingReporter());
});
afterAll(async () => {
  await repo.close();
  await tmp.cleanup();
});

const artifact = (name: string) => bundle.artifacts.find((a) => a.path.endsWith(`/${name}`))!.path;

describe('the PXE boot planned straight from the repository (what a boot server streams)', () => {
  it('streams the initrd aim build --format pxe writes, byte for byte, and the kernel', async () => {
    const boot = await planPxeBoot(repo, request, new RecordingReporter());
    expect(boot.kernel).toEqual({ source: 'image' });
    const written = await readFile(artifact('initrd.img'));
    expect((await collect(boot.initrd.compressed())).equals(written)).toBe(true);
    expect((await collect(boot.plan.kernel.vmlinuz.open())).equals(await readFile(artifact('vmlinuz')))).toBe(true);
    expect(boot.plan.kernel.vmlinuz.size).toBe((await readFile(artifact('vmlinuz'))).length);
  });

  it('tells the uncompressed length before streaming, and the uncompressed stream is the initrd unpacked', async () => {
    const { initrd } = await planPxeBoot(repo, request, new RecordingReporter());
    const raw = await collect(initrd.uncompressed());
    expect(raw.length).toBe(initrd.uncompressedLength);
    expect(initrd.uncompressedLength).toBe(initrd.core.cpioBytes + initrd.root.length);
    const unpacked = (await execa('zstd', ['-dc', artifact('initrd.img')], { encoding: 'buffer' })).stdout;
    expect(raw.equals(Buffer.from(unpacked))).toBe(true);
    // the module the request asked for was streamed from its blob into the core archive
    const [core, root] = readNewcArchives(raw);
    expect(core!.find((m) => m.name === `lib/modules/${FAKE_KERNEL_VERSION}/kernel/extra/fakemod.ko`)!.data.toString()).toBe('not a module either\n');
    expect(root!.find((m) => m.name === 'newroot/console')).toMatchObject({ mode: 0o020600, gid: 5 });
  });

  it('keys the initrd by what decides its bytes: the same plan gives the same keys, another content other keys', async () => {
    const a = (await planPxeBoot(repo, request, new RecordingReporter())).initrd;
    const again = (await planPxeBoot(repo, request, new RecordingReporter())).initrd;
    expect([again.key, again.uncompressedKey]).toEqual([a.key, a.uncompressedKey]);
    expect(a.key).not.toBe(a.uncompressedKey);
    for (const other of [{ ...request, modules: [] }, { ...request, entrypoint: ['/app', '--other'] }]) {
      const b = (await planPxeBoot(repo, other, new RecordingReporter())).initrd;
      expect(b.key).not.toBe(a.key);
      expect(b.uncompressedKey).not.toBe(a.uncompressedKey);
      expect((await collect(b.uncompressed())).equals(await collect(a.uncompressed()))).toBe(false);
    }
  });
});
