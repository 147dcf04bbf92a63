import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badImages, lastGoodVersion, listChannels, promoteImage, rollbackChannel } from '../../src/core/lifecycle/channels.js';
import type { ChannelHistoryEntry, QualificationRecord } from '../../src/core/model/channel.js';
import type { PxeBootSettings } from '../../src/core/model/pxe.js';
import { parseSelector } from '../../src/core/pxe/selector.js';
import { ChannelConflict } from '../../src/core/repository/catalog-channels.js';
import { newLeaseOwner } from '../../src/core/repository/catalog-publications.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { addBootableImage, putFile } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

const by = { user: 'test', host: 'h', pid: 1 };
const entry = (seq: number, action: ChannelHistoryEntry['action'], imageId: string, fromImageId?: string): ChannelHistoryEntry => ({
  seq,
  channel: 'prod',
  action,
  imageId,
  imageRef: imageId,
  ...(fromImageId ? { fromImageId, fromImageRef: fromImageId } : {}),
  effects: { pxe: [], amis: [] },
  by,
  at: `2026-01-01T00:00:0${seq}Z`,
});
const qualification = (imageId: string, passed: boolean): QualificationRecord => ({
  id: `q-${imageId}`,
  imageId,
  imageRef: imageId,
  profile: 'p',
  passed,
  artifact: { format: 'raw', bytes: 1, sha256: '' },
  ports: [],
  probes: [],
  timings: { buildMs: 1, totalMs: 2 },
  by,
  startedAt: '2026-01-01T00:00:00Z',
  finishedAt: '2026-01-01T00:00:01Z',
});

describe('the last good version of a channel (pure)', () => {
  const all = () => true;

  it('is the newest earlier image the channel held, skipping the current one', () => {
    const h = [entry(1, 'promote', 'a'), entry(2, 'promote', 'b', 'a'), entry(3, 'promote', 'c', 'b')];
    expect(lastGoodVersion(h, 'c', new Map(), all)?.imageId).toBe('b');
    // an image held twice counts once, at its newest
    const again = [...h, entry(4, 'promote', 'b', 'c'), entry(5, 'promote', 'd', 'b')];
    expect(lastGoodVersion(again, 'd', new Map(), all)?.imageId).toBe('b');
  });

  it('never goes back to an image rolled back from, one whose latest qualification failed, or one that is gone', () => {
    const h = [entry(1, 'promote', 'a'), entry(2, 'promote', 'b', 'a'), entry(3, 'promote', 'c', 'b'), entry(4, 'rollback', 'b', 'c')];
    expect(badImages(h, new Map())).toEqual(new Set(['c']));
    expect(lastGoodVersion(h, 'b', new Map(), all)?.imageId).toBe('a');
    expect(lastGoodVersion(h, 'b', new Map([['a', qualification('a', false)]]), all)).toBeUndefined();
    expect(lastGoodVersion(h, 'b', new Map([['a', qualification('a', true)]]), all)?.imageId).toBe('a');
    expect(lastGoodVersion(h, 'b', new Map(), (id) => id !== 'a')).toBeUndefined();
  });

  it('an image promoted again by hand after a rollback is good again', () => {
    const h = [entry(1, 'promote', 'a'), entry(2, 'promote', 'b', 'a'), entry(3, 'rollback', 'a', 'b'), entry(4, 'promote', 'b', 'a'), entry(5, 'promote', 'c', 'b')];
    expect(badImages(h, new Map()).size).toBe(0);
    expect(lastGoodVersion(h, 'c', new Map(), all)?.imageId).toBe('b');
  });
});

describe('channels in the catalog: promote, rollback, what follows them', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  const ids: string[] = [];
  const reporter = new RecordingReporter();
  let boot: PxeBootSettings;

  beforeAll(async () => {
    tmp = await tempDir('aim-channels-');
    await initRepository(join(tmp.dir, 'repo'));
    repo = await openRepository(join(tmp.dir, 'repo'));
    for (const v of ['1', '2', '3']) {
      const id = await addBootableImage(repo, [await putFile(repo, '/version', v)]);
      await repo.catalog.setTag(`app:${v}`, id);
      ids.push(id);
    }
    const v = '6.1.0-test';
    boot = { platform: 'qemu', modules: [], entrypoint: ['/app'], kernel: { source: 'image', imageId: ids[0]!, version: v } };
    // machines that follow prod, one that follows dev, one that follows nothing
    await repo.catalog.pxe.assign({ selector: parseSelector('default'), imageRef: 'app:1', imageId: ids[0]!, boot, kernelArgs: '', channel: 'prod' });
    await repo.catalog.pxe.assign({ selector: parseSelector('52:54:00:00:00:01'), imageRef: 'app:1', imageId: ids[0]!, boot, kernelArgs: 'quiet', channel: 'prod' });
    await repo.catalog.pxe.assign({ selector: parseSelector('52:54:00:00:00:02'), imageRef: 'app:1', imageId: ids[0]!, boot, kernelArgs: '', channel: 'dev' });
    await repo.catalog.pxe.assign({ selector: parseSelector('52:54:00:00:00:03'), imageRef: 'app:1', imageId: ids[0]!, boot, kernelArgs: '' });
    // app:1 and app:2 have AMIs in two regions (app:2 only in one), app:3 none
    const owner = newLeaseOwner();
    const publish = async (imageId: string, region: string, ami: string) => {
      const c = await repo.catalog.publications.claim({ key: `${imageId}-${region}`, provider: 'aws', source: 'built-in', imageId, imageRef: imageId, target: region, options: {} }, owner);
      if (!('publication' in c) || !c.publication) throw new Error('claim failed');
      await repo.catalog.publications.release(c.publication.id, owner, { state: 'published', published: [{ kind: 'ami', id: ami, location: region }] });
    };
    await publish(ids[0]!, 'eu-west-1', 'ami-0001');
    await publish(ids[0]!, 'us-east-1', 'ami-0002');
    await publish(ids[1]!, 'eu-west-1', 'ami-0003');
  });
  afterAll(async () => {
    await repo?.close();
    await tmp?.cleanup();
  });

  const assignment = async (selector: string) => (await repo.catalog.pxe.assignments()).find((a) => a.selector.key === selector)!;

  it('promote creates the channel, records who and why, and sets the AMI pointers of its image', async () => {
    const r = await promoteImage(repo, { image: 'app:1', channel: 'prod', reason: 'first release' }, reporter);
    expect(r.channel).toMatchObject({ name: 'prod', imageId: ids[0], imageRef: 'app:1', state: 'ready' });
    expect(r.channel.amis.map((a) => [a.region, a.amiId, a.imageId])).toEqual([
      ['eu-west-1', 'ami-0001', ids[0]],
      ['us-east-1', 'ami-0002', ids[0]],
    ]);
    expect(r.entry).toMatchObject({ action: 'promote', imageId: ids[0], reason: 'first release', effects: { pxe: [], amis: [{ region: 'eu-west-1', to: 'ami-0001' }, { region: 'us-east-1', to: 'ami-0002' }] } });
    expect(r.entry!.fromImageId).toBeUndefined();
    expect(r.entry!.by.pid).toBe(process.pid);
    // the same image again: nothing moves, nothing is recorded
    const again = await promoteImage(repo, { image: 'app:1', channel: 'prod' }, reporter);
    expect(again.entry).toBeUndefined();
    expect(await repo.catalog.channels.history('prod')).toHaveLength(1);
  });

  it('promote switches the PXE assignments that follow the channel, and only those; the AMI pointer follows the image', async () => {
    const r = await promoteImage(repo, { image: 'app:2', channel: 'prod' }, reporter);
    expect(r.entry!.fromImageId).toBe(ids[0]);
    expect(r.entry!.effects.pxe.map((p) => [p.selector, p.from, p.to])).toEqual([
      ['default', ids[0], ids[1]],
      ['mac:52:54:00:00:00:01', ids[0], ids[1]],
    ]);
    expect(await assignment('default')).toMatchObject({ imageId: ids[1], imageRef: 'app:2', channel: 'prod', kernelArgs: '' });
    expect(await assignment('mac:52:54:00:00:00:01')).toMatchObject({ imageId: ids[1], kernelArgs: 'quiet' });
    // its kernel is chosen for the new image (its own)
    expect((await assignment('default')).boot.kernel.imageId).toBe(ids[1]);
    expect(await assignment('mac:52:54:00:00:00:02')).toMatchObject({ imageId: ids[0], channel: 'dev' });
    expect(await assignment('mac:52:54:00:00:00:03')).toMatchObject({ imageId: ids[0] });
    // us-east-1 has no AMI of app:2: that pointer is gone, said in the effects
    expect(r.channel.amis.map((a) => [a.region, a.amiId])).toEqual([['eu-west-1', 'ami-0003']]);
    expect(r.entry!.effects.amis).toEqual([{ region: 'eu-west-1', from: 'ami-0001', to: 'ami-0003' }, { region: 'us-east-1', from: 'ami-0002' }]);
    await promoteImage(repo, { image: 'app:3', channel: 'prod' }, reporter);
    expect(await assignment('default')).toMatchObject({ imageId: ids[2] });
  });

  it('rollback goes to the last good version with everything that follows, records why, and never back to what it left', async () => {
    const back = await rollbackChannel(repo, { channel: 'prod', reason: 'app:3 leaks memory' }, reporter);
    expect(back.channel).toMatchObject({ imageId: ids[1], state: 'ready' });
    expect(back.entry).toMatchObject({ action: 'rollback', imageId: ids[1], fromImageId: ids[2], reason: 'app:3 leaks memory' });
    expect(await assignment('default')).toMatchObject({ imageId: ids[1] });
    expect(back.channel.amis.map((a) => a.amiId)).toEqual(['ami-0003']);
    const again = await rollbackChannel(repo, { channel: 'prod' }, reporter);
    expect(again.channel.imageId).toBe(ids[0]);
    expect(again.entry.reason).toBe('rolled back by hand');
    expect(await assignment('mac:52:54:00:00:00:01')).toMatchObject({ imageId: ids[0], kernelArgs: 'quiet' });
    expect(again.channel.amis.map((a) => [a.region, a.amiId])).toEqual([
      ['eu-west-1', 'ami-0001'],
      ['us-east-1', 'ami-0002'],
    ]);
    // app:2 and app:3 were rolled back from: nothing good is left before app:1
    await expect(rollbackChannel(repo, { channel: 'prod' }, reporter)).rejects.toMatchObject({ code: 'E_NO_GOOD_VERSION', exitCode: 3 });
    const history = await repo.catalog.channels.history('prod');
    expect(history.map((e) => [e.action, e.imageId])).toEqual([
      ['promote', ids[0]],
      ['promote', ids[1]],
      ['promote', ids[2]],
      ['rollback', ids[1]],
      ['rollback', ids[0]],
    ]);
    expect(await repo.catalog.channels.history('prod', 2)).toEqual(history.slice(-2));
  });

  it('a failed qualification keeps an image out of reach of rollback; --qualified promotes only what passed', async () => {
    await promoteImage(repo, { image: 'app:1', channel: 'qa' }, reporter);
    await promoteImage(repo, { image: 'app:2', channel: 'qa' }, reporter);
    await repo.catalog.channels.putQualification({ ...qualification(ids[0]!, false), id: 'q-fail', error: { code: 'E_PROBE_FAILED', message: 'probe / did not meet its expectation' } });
    await expect(rollbackChannel(repo, { channel: 'qa' }, reporter)).rejects.toMatchObject({ code: 'E_NO_GOOD_VERSION' });
    await expect(promoteImage(repo, { image: 'app:1', channel: 'qa', requireQualified: true }, reporter)).rejects.toMatchObject({ code: 'E_NOT_QUALIFIED', exitCode: 11, message: expect.stringContaining('q-fail') });
    await expect(promoteImage(repo, { image: 'app:3', channel: 'qa', requireQualified: true }, reporter)).rejects.toMatchObject({ code: 'E_NOT_QUALIFIED', message: expect.stringContaining('never qualified') });
    await repo.catalog.channels.putQualification({ ...qualification(ids[0]!, true), id: 'q-pass', finishedAt: '2026-01-01T00:00:02Z' });
    expect((await promoteImage(repo, { image: 'app:1', channel: 'qa', requireQualified: true }, reporter)).channel.imageId).toBe(ids[0]);
    const view = (await listChannels(repo)).find((c) => c.name === 'qa')!;
    expect(view.qualification).toMatchObject({ id: 'q-pass', passed: true });
  });

  it('a move planned against a catalog that changed meanwhile writes nothing', async () => {
    const before = await repo.catalog.channels.get('prod');
    const history = await repo.catalog.channels.history('prod');
    const base = { channel: 'prod', action: 'promote' as const, imageId: ids[1]!, imageRef: 'app:2', state: 'ready' as const, amis: [], by };
    await expect(repo.catalog.channels.move({ ...base, expect: { imageId: ids[2]! }, pxe: [] })).rejects.toBeInstanceOf(ChannelConflict);
    // the plan missed an assignment that follows prod
    await expect(repo.catalog.channels.move({ ...base, expect: { imageId: ids[0]! }, pxe: [{ selector: 'default', from: ids[0]!, imageId: ids[1]!, imageRef: 'app:2', boot }] })).rejects.toBeInstanceOf(ChannelConflict);
    expect(await repo.catalog.channels.get('prod')).toEqual(before);
    expect(await repo.catalog.channels.history('prod')).toEqual(history);
    expect(await assignment('default')).toMatchObject({ imageId: ids[0] });
  });

  it('a qualifying channel is held by its live rollout; a killed rollout leaves it interrupted, which promote may take over', async () => {
    const plan = { channel: 'stage', action: 'promote' as const, imageId: ids[1]!, imageRef: 'app:2', amis: [], pxe: [], by };
    await repo.catalog.channels.move({ ...plan, expect: { imageId: null }, state: 'qualifying', rollout: { id: 'r1', pid: process.pid, host: (await import('node:os')).hostname() } });
    expect((await listChannels(repo)).find((c) => c.name === 'stage')).toMatchObject({ state: 'qualifying', rollout: { id: 'r1' } });
    await expect(promoteImage(repo, { image: 'app:1', channel: 'stage' }, reporter)).rejects.toMatchObject({ code: 'E_BUSY', exitCode: 9 });
    // pid 2^22+1 is above Linux's pid_max: no such process
    await repo.catalog.channels.move({ ...plan, expect: { imageId: ids[1]! }, state: 'qualifying', rollout: { id: 'r2', pid: 4_194_305, host: (await import('node:os')).hostname() } });
    expect((await listChannels(repo)).find((c) => c.name === 'stage')!.state).toBe('interrupted');
    const taken = await promoteImage(repo, { image: 'app:1', channel: 'stage' }, reporter);
    expect(taken.channel).toMatchObject({ imageId: ids[0], state: 'ready' });
    expect(taken.channel.rollout).toBeUndefined();
  });

  it('channel names are checked', async () => {
    await expect(promoteImage(repo, { image: 'app:1', channel: 'Prod!' }, reporter)).rejects.toMatchObject({ code: 'E_CONFIG' });
    await expect(rollbackChannel(repo, { channel: 'nosuch' }, reporter)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});
