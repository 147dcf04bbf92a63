import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseKernel } from '../../src/core/bootable/kernel-choice.js';
import { importImage } from '../../src/core/import/import-image.js';
import type { Entry } from '../../src/core/model/entry.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { RecordingReporter, silentReporter } from '../../src/lib/reporter.js';
import { writeFakeKernelTree } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
let app: Entry[];
let withKernel: Entry[];
const importTree = async (dir: string, tags: string[]) => (await importImage(repo, { source: dir, kind: 'dir', tags }, silentReporter)).id;

beforeAll(async () => {
  tmp = await tempDir('aim-kernel-choice-');
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
  await mkdir(join(tmp.dir, 'app'));
  await writeFile(join(tmp.dir, 'app', 'app'), 'app');
  app = await repo.catalog.entries(await importTree(join(tmp.dir, 'app'), ['slim/app:1']));
  withKernel = await repo.catalog.entries(await importTree(await writeFakeKernelTree(join(tmp.dir, 'own'), '6.1.0-9-amd64'), ['gold/own:1']));
});
afterAll(async () => {
  await repo.close();
  await tmp.cleanup();
});

describe('the kernel of a bootable build', () => {
  it('with no kernel anywhere, fails before work and says how to make one', async () => {
    const err = await chooseKernel(repo, app, undefined, silentReporter).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_NO_KERNEL', hint: expect.stringMatching(/aim core kernel/) });
  });

  it('takes --kernel as given, else the image\'s own kernel', async () => {
    expect(await chooseKernel(repo, app, 'my/kernel:x', silentReporter)).toEqual({ source: 'flag', ref: 'my/kernel:x' });
    expect(await chooseKernel(repo, withKernel, undefined, silentReporter)).toEqual({ source: 'image' });
  });

  it('defaults to the only kernel core, and says so', async () => {
    await importTree(await writeFakeKernelTree(join(tmp.dir, 'k1'), '6.1.0-1-amd64'), ['core/kernel:bookworm']);
    // names that only look like the prefix to LIKE are not kernel cores
    await repo.catalog.setTag('core/kernel_x:1', (await repo.catalog.resolve('gold/own:1'))!);
    await repo.catalog.setTag('core%kernel:1', (await repo.catalog.resolve('gold/own:1'))!);
    const reporter = new RecordingReporter();
    expect(await chooseKernel(repo, app, undefined, reporter)).toEqual({ source: 'default', ref: 'core/kernel:bookworm', choices: ['core/kernel:bookworm'] });
    expect(reporter.warnings()).toEqual([]);
    expect(reporter.events).toContainEqual({ type: 'info', message: expect.stringMatching(/^kernel: core\/kernel:bookworm /) });
  });

  it('with several, picks the most recently tagged and lists every choice in a warning', async () => {
    await new Promise((r) => setTimeout(r, 5)); // tag times have millisecond resolution
    await importTree(await writeFakeKernelTree(join(tmp.dir, 'k2'), '6.12.0-1-amd64'), ['core/kernel:trixie']);
    let reporter = new RecordingReporter();
    expect(await chooseKernel(repo, app, undefined, reporter)).toEqual({ source: 'default', ref: 'core/kernel:trixie', choices: ['core/kernel:trixie', 'core/kernel:bookworm'] });
    expect(reporter.warnings()).toEqual([
      expect.objectContaining({ code: 'W_KERNEL_PICKED', message: expect.stringMatching(/using core\/kernel:trixie, the newest of 2 kernel cores \(core\/kernel:trixie, core\/kernel:bookworm\); pass --kernel/) }),
    ]);
    // newest by when the tag was set, not by name: re-tagging bookworm makes it the default
    await new Promise((r) => setTimeout(r, 5));
    await repo.catalog.setTag('core/kernel:bookworm', (await repo.catalog.resolve('core/kernel:bookworm'))!);
    reporter = new RecordingReporter();
    expect((await chooseKernel(repo, app, undefined, reporter)).ref).toBe('core/kernel:bookworm');
    expect(reporter.warnings()[0]!.message).toMatch(/using core\/kernel:bookworm/);
  });
});
