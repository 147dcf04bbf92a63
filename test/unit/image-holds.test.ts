/**
 * What holds an image (core/repository/holds.ts): aim image rm refuses an image a channel serves or
 * would roll back to, one a channel's AMI pointer, a PXE assignment or a live publication names;
 * --force removes it and says what it leaves dangling; gc never collects the objects of an image
 * something still names, and frees them once nothing does.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listChannels, promoteImage } from '../../src/core/lifecycle/channels.js';
import type { QualificationRecord } from '../../src/core/model/channel.js';
import type { PxeBootSettings } from '../../src/core/model/pxe.js';
import { parseSelector } from '../../src/core/pxe/selector.js';
import { removeImageRef } from '../../src/core/query/remove.js';
import { newLeaseOwner } from '../../src/core/repository/catalog-publications.js';
import { holdsOf, ImageInUseError, type ImageHold } from '../../src/core/repository/holds.js';
import { fsckRepository, gcRepository } from '../../src/core/repository/maintenance.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { silentReporter } from '../../src/lib/reporter.js';
import { addBootableImage, putFile } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
/** app:1 … app:7, each with a file of its own (/version) besides the shared bootable files. */
const ids: string[] = [];
const versionBlob: string[] = [];

async function publish(imageId: string, key: string, state: 'published' | 'removed', ami?: { region: string; id: string }): Promise<string> {
  const owner = newLeaseOwner();
  const c = await repo.catalog.publications.claim({ key, provider: 'aws', source: 'built-in', imageId, imageRef: imageId.slice(0, 12), target: ami?.region ?? 'eu-west-1', options: {} }, owner);
  if (!('publication' in c) || !c.publication) throw new Error('claim failed');
  await repo.catalog.publications.release(c.publication.id, owner, { state, published: ami ? [{ kind: 'ami', id: ami.id, location: ami.region }] : [] });
  return c.publication.id;
}

const refused = async (ref: string): Promise<ImageHold[]> => {
  const e = await removeImageRef(repo, ref).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `${ref} was removed`).toBeInstanceOf(ImageInUseError);
  const err = e as ImageInUseError;
  expect(err).toMatchObject({ code: 'E_IMAGE_IN_USE', exitCode: 2 });
  expect(err.hint).toMatch(/--force/);
  expect(err.toJSON()).toMatchObject({ code: 'E_IMAGE_IN_USE', holds: err.holds });
  return err.holds;
};

beforeAll(async () => {
  tmp = await tempDir('aim-holds-');
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
  for (let v = 1; v <= 7; v++) {
    const file = await putFile(repo, '/version', `version ${v}\n`);
    const id = await addBootableImage(repo, [file]);
    await repo.catalog.setTag(`app:${v}`, id);
    ids.push(id);
    versionBlob.push(file.blob!);
  }
  // prod: app:1, then app:2 (with its AMI); app:1 is where a rollback would go
  await publish(ids[1]!, 'k2', 'published', { region: 'eu-west-1', id: 'ami-0002' });
  await promoteImage(repo, { image: 'app:1', channel: 'prod' }, silentReporter);
  await promoteImage(repo, { image: 'app:2', channel: 'prod' }, silentReporter);
  // a machine boots app:3; app:4 is published; app:5's publication was removed
  const boot: PxeBootSettings = { platform: 'qemu', modules: [], kernel: { source: 'image', imageId: ids[2]!, version: '6.1.0-test' } };
  await repo.catalog.pxe.assign({ selector: parseSelector('52:54:00:00:00:03'), imageRef: 'app:3', imageId: ids[2]!, boot, kernelArgs: '' });
  await publish(ids[3]!, 'k4', 'published');
  await publish(ids[4]!, 'k5', 'removed');
});
afterAll(async () => {
  await repo?.close();
  await tmp?.cleanup();
});

describe('aim image rm refuses an image in use', () => {
  it('the image a channel serves, with its AMI pointer and publication', async () => {
    const holds = await refused('app:2');
    expect(holds.map((h) => h.kind).sort()).toEqual(['ami-pointer', 'channel', 'publication']);
    expect(holds).toContainEqual({ kind: 'channel', channel: 'prod' });
    expect(holds).toContainEqual({ kind: 'ami-pointer', channel: 'prod', region: 'eu-west-1', amiId: 'ami-0002' });
    // refused by id too; the image and its tag are still there
    await refused(ids[1]!);
    expect(await repo.catalog.resolve('app:2')).toBe(ids[1]);
  });

  it('the channel\'s last good version, the one aim channel rollback goes to', async () => {
    expect(await refused('app:1')).toEqual([{ kind: 'last-good', channel: 'prod' }]);
  });

  it('an image a PXE assignment boots, and one a live publication holds', async () => {
    expect(await refused('app:3')).toEqual([{ kind: 'pxe', selector: 'mac:52:54:00:00:00:03' }]);
    expect(await refused('app:4')).toMatchObject([{ kind: 'publication', provider: 'aws', state: 'published' }]);
  });

  it('removes what nothing holds: a removed publication holds nothing; a tag of a held image goes, the image stays', async () => {
    expect(await removeImageRef(repo, 'app:5')).toEqual({ untagged: ['app:5'], removedImage: ids[4] });
    await repo.catalog.setTag('app:3-alias', ids[2]!);
    expect(await removeImageRef(repo, 'app:3-alias')).toEqual({ untagged: ['app:3-alias'] });
    expect(await repo.catalog.getImage(ids[2]!)).toBeDefined();
  });

  it('the last good version follows the rules of rollback: one whose latest qualification failed is not held', async () => {
    await promoteImage(repo, { image: 'app:6', channel: 'qa' }, silentReporter);
    await promoteImage(repo, { image: 'app:7', channel: 'qa' }, silentReporter);
    expect(await refused('app:6')).toEqual([{ kind: 'last-good', channel: 'qa' }]);
    const failed: QualificationRecord = {
      id: 'q-6', imageId: ids[5]!, imageRef: 'app:6', profile: 'p', passed: false, artifact: { format: 'raw', bytes: 1, sha256: '' }, ports: [], probes: [],
      timings: { buildMs: 1, totalMs: 1 }, by: { user: 't', host: 'h', pid: 1 }, startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:00:01Z',
    };
    await repo.catalog.channels.putQualification(failed);
    expect(holdsOf(await repo.catalog.holdData()).get(ids[5]!)).toBeUndefined();
    expect((await removeImageRef(repo, 'app:6')).removedImage).toBe(ids[5]);
  });
});

describe('--force, and what gc keeps', () => {
  it('--force removes a held image and lists what it leaves dangling; gc keeps its objects while anything names it', async () => {
    const removed = await removeImageRef(repo, 'app:2', { force: true });
    expect(removed.removedImage).toBe(ids[1]);
    expect(removed.dangling?.map((h) => h.kind).sort()).toEqual(['ami-pointer', 'channel', 'publication']);
    expect((await listChannels(repo)).find((c) => c.name === 'prod')).toMatchObject({ imageId: ids[1], imageMissing: true });

    const gc = await gcRepository(repo, silentReporter);
    expect(gc.danglingImages).toEqual([ids[1]]);
    // its manifest and its own file survive; app:5's (nothing names it) and app:6's are collected
    expect(await repo.blobs.has(ids[1]!)).toBe(true);
    expect(await repo.blobs.has(versionBlob[1]!)).toBe(true);
    for (const i of [4, 5]) {
      expect(await repo.blobs.has(ids[i]!)).toBe(false);
      expect(await repo.blobs.has(versionBlob[i]!)).toBe(false);
    }
    const fsck = await fsckRepository(repo, silentReporter);
    expect(fsck).toMatchObject({ ok: true, unreferencedBlobs: 0, danglingImages: [ids[1]] });
  });

  it('once nothing names it (prod moved on, the publication removed), gc frees its objects', async () => {
    await promoteImage(repo, { image: 'app:7', channel: 'prod' }, silentReporter);
    await publish(ids[1]!, 'k2', 'removed');
    expect(holdsOf(await repo.catalog.holdData()).has(ids[1]!)).toBe(false);
    const gc = await gcRepository(repo, silentReporter);
    expect(gc.danglingImages).toEqual([]);
    expect(await repo.blobs.has(ids[1]!)).toBe(false);
    expect(await repo.blobs.has(versionBlob[1]!)).toBe(false);
    // what every image shares is still there
    expect(await repo.blobs.has(ids[6]!)).toBe(true);
  });

  it('a channel never moves to an image removed after the move was planned', async () => {
    const plan = { channel: 'dev', action: 'promote' as const, imageId: ids[3]!, imageRef: 'app:4', state: 'ready' as const, expect: { imageId: null }, pxe: [], amis: [], by: { user: 't', host: 'h', pid: 1 } };
    await removeImageRef(repo, 'app:4', { force: true });
    await expect(repo.catalog.channels.move(plan)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    expect(await repo.catalog.channels.get('dev')).toBeUndefined();
  });
});

describe('PXE assignments and their kernels', () => {
  it('an assignment holds the kernel core image it boots, not only the image', async () => {
    const kernelId = await addBootableImage(repo, [await putFile(repo, '/version', 'kernel core\n')]);
    await repo.catalog.setTag('core/kernel:test', kernelId);
    const boot: PxeBootSettings = { platform: 'qemu', modules: [], kernel: { source: 'default', imageId: kernelId, version: '6.1.0-test' } };
    await repo.catalog.pxe.assign({ selector: parseSelector('rack=r1'), imageRef: 'app:7', imageId: ids[6]!, boot, kernelArgs: '' });
    expect(await refused('core/kernel:test')).toEqual([{ kind: 'pxe-kernel', selector: 'label:rack=r1' }]);
    // its own kernel (source image) is the image itself: one hold, not two
    expect(holdsOf(await repo.catalog.holdData()).get(ids[2]!)).toEqual([{ kind: 'pxe', selector: 'mac:52:54:00:00:00:03' }]);
  });

  it('an assignment never points at an image, or a kernel, removed after its boot was planned', async () => {
    const file = await putFile(repo, '/version', 'short-lived\n');
    const id = await addBootableImage(repo, [file]);
    const boot: PxeBootSettings = { platform: 'qemu', modules: [], kernel: { source: 'image', imageId: id, version: '6.1.0-test' } };
    await removeImageRef(repo, id);
    const selector = parseSelector('52:54:00:00:00:09');
    await expect(repo.catalog.pxe.assign({ selector, imageRef: 'gone', imageId: id, boot, kernelArgs: '' })).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringMatching(/image .* was removed meanwhile/) });
    const withGoneKernel = { ...boot, kernel: { ...boot.kernel, source: 'default' as const } };
    await expect(repo.catalog.pxe.assign({ selector, imageRef: 'app:7', imageId: ids[6]!, boot: withGoneKernel, kernelArgs: '' })).rejects.toMatchObject({ message: expect.stringMatching(/kernel .* was removed meanwhile/) });
    expect((await repo.catalog.pxe.assignments()).map((a) => a.selector.key)).not.toContain(selector.key);
  });
});
