import { join } from 'node:path';
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

  it('refuses a bad tag before downloading anything', async () => {
    const bad = await aim<{ error: { code: string } }>(['core', 'kernel', '--repo', repo, '--deb-dir', kernelDebDir, '--tag', 'Not A Tag']);
    expect(bad.exitCode).toBe(2);
  });
});
