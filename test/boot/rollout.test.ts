/**
 * aim rollout on a real image, booted in QEMU: the slim redis image is in channel prod, a PXE
 * assignment follows prod, and prod has an AMI pointer.
 * - A rollout with a harmless update (redis-tools rebuilt by dpkg-deb from the gold image's own
 *   files, redis-cli with a few bytes appended) qualifies its candidate as prod ships it: a PXE
 *   assignment follows prod, so the candidate boots as a PXE bundle built with that assignment's
 *   settings (QEMU's iPXE ROM, TFTP, OVMF); the profile's redis-cli probes meet their expectations
 *   and prod keeps it, with the PXE assignment.
 * - A rollout with an update that breaks the service on purpose (redis-server's program replaced
 *   by a script that exits 1), qualified as a raw disk (--format raw), fails qualification; prod,
 *   the PXE assignment and the AMI pointer roll back by themselves to the last good version, and
 *   the history says why.
 * Two boots in all (one PXE, one disk), each ended as soon as the verdict is known.
 */
import { execa } from 'execa';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChannelView } from '../../src/core/lifecycle/channels.js';
import type { RolloutReport } from '../../src/core/lifecycle/rollout.js';
import type { ChannelHistoryEntry } from '../../src/core/model/channel.js';
import type { PxeAssignment } from '../../src/core/model/pxe.js';
import { newLeaseOwner } from '../../src/core/repository/catalog-publications.js';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim } from '../helpers/cli.js';
import { patchedDeb, type PatchedDeb } from '../helpers/debs-from-gold.js';
import { goldTar } from '../helpers/gold.js';
import { kernelDebDir } from '../helpers/kernel.js';
import { tempDir } from '../helpers/tmp.js';
import { addSlimRedis } from './helpers/slim-redis.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let harmless: PatchedDeb;
let broken: PatchedDeb;
const ids: Record<string, string> = {};

const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);
const ok = async <T = Record<string, unknown>>(...args: string[]) => {
  const r = await run<T>(...args);
  expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr.slice(-3000)}`).toBe(0);
  return r.json;
};
const idOf = async (ref: string) => (await ok<{ id: string }>('image', 'inspect', ref)).id;
const prod = async () => (await ok<{ channels: ChannelView[] }>('channel', 'list')).channels.find((c) => c.name === 'prod')!;
const machine = async () => (await ok<{ assignments: PxeAssignment[] }>('pxe', 'list')).assignments.find((a) => a.selector.key === 'default')!;
// bounds, not expectations: a loaded 2-core machine boots slowly under TCG
const QUALIFY = ['--ready-timeout', '240s', '--memory', '256'];

/** Records that an image was published as an AMI in a region, as aim ship aws does. */
async function publishAmi(imageId: string, region: string, ami: string): Promise<void> {
  const r = await openRepository(repo);
  try {
    const owner = newLeaseOwner();
    const claim = await r.catalog.publications.claim({ key: `${imageId}/${region}`, provider: 'aws', source: 'built-in', imageId, imageRef: imageId.slice(0, 12), target: region, options: {} }, owner);
    if (claim.busy) throw new Error('publication busy');
    await r.catalog.publications.release(claim.publication.id, owner, { state: 'published', published: [{ kind: 'ami', id: ami, location: region }] });
  } finally {
    await r.close();
  }
}

beforeAll(async () => {
  tmp = await tempDir('aim-rollout-boot-');
  repo = join(tmp.dir, 'repo');
  await ok('repo', 'init');
  await addSlimRedis(repo);
  await ok('core', 'kernel', '--deb-dir', kernelDebDir);
  ids.slim1 = await idOf('slim/redis:1');
  // the updates: redis-tools (redis-cli, and redis-check-rdb, which redis-server links to) rebuilt from the gold tree
  const root = join(tmp.dir, 'gold');
  await mkdir(root);
  await execa('tar', ['-xpf', await goldTar('redis'), '-C', root, '--numeric-owner']);
  const out = join(tmp.dir, 'debs');
  await mkdir(out);
  harmless = await patchedDeb(root, 'redis-tools', { change: ['/usr/bin/redis-cli'], suffix: '+aim1', out });
  broken = await patchedDeb(root, 'redis-tools', {
    change: [],
    replace: { '/usr/bin/redis-check-rdb': '#!/bin/sh\necho "redis-server: broken on purpose by aim tests" >&2\nexit 1\n' },
    suffix: '+aim2',
    out,
  });
  await execa('rm', ['-rf', root]);
  // prod serves slim redis 1 to a PXE machine that follows it, and points at its AMI
  await publishAmi(ids.slim1, 'eu-west-1', 'ami-0000000000000001');
  await ok('channel', 'promote', 'slim/redis:1', 'prod', '--reason', 'first release');
  await ok('pxe', 'assign', 'default', 'slim/redis:1', '--channel', 'prod');
}, 900_000);
afterAll(async () => tmp?.cleanup());

describe('aim rollout: update → qualify → promote, and back by itself on a failed qualification', () => {
  it('a harmless update is qualified in QEMU and kept; the PXE assignment follows the channel', async () => {
    const started = Date.now();
    const report = await ok<RolloutReport>('rollout', 'gold/redis:1', '--with', harmless.path, '--to', 'prod', ...QUALIFY);
    console.log(`rollout (passed): ${((Date.now() - started) / 1000).toFixed(1)} s; update ${report.timings.updateMs} ms, build ${report.timings.prepareMs} ms, qualification ${report.timings.qualifyMs} ms (ready ${report.qualification?.timings.readyMs} ms after QEMU started)`);
    ids.slim2 = await idOf('slim/redis:2');
    expect(report).toMatchObject({ outcome: 'promoted', channel: 'prod', previous: { id: ids.slim1 }, candidate: { id: ids.slim2 }, current: { id: ids.slim2 } });
    // no --format: prod's machines boot by PXE, so that is what was qualified
    expect(report.qualification).toMatchObject({ passed: true, imageId: ids.slim2, profile: 'redis', ports: [6379], artifact: { format: 'pxe', chosenBy: 'channel', channel: 'prod', pxeAssignment: 'default' } });
    expect(report.qualification!.probes.map((p) => [p.probe, p.met, p.exitCode])).toEqual([
      ['exec: redis-cli PING', true, 0],
      ['exec: redis-cli SET greeting hello-from-aim', true, 0],
      ['exec: redis-cli GET greeting', true, 0],
    ]);
    expect(report.history.map((e) => e.action)).toEqual(['promote', 'qualified']);
    // slim redis 2 has no AMI yet: prod's pointer went with the image
    expect(report.history[0]!.effects).toEqual({ pxe: [{ selector: 'default', from: ids.slim1, to: ids.slim2 }], amis: [{ region: 'eu-west-1', from: 'ami-0000000000000001' }] });
    expect(await prod()).toMatchObject({ imageId: ids.slim2, state: 'ready', amis: [], qualification: { id: report.qualification!.id, passed: true } });
    expect(await machine()).toMatchObject({ imageId: ids.slim2, channel: 'prod' });
    // shipped now: promoting the image the channel holds sets its AMI pointer
    await publishAmi(ids.slim2, 'eu-west-1', 'ami-0000000000000002');
    const refreshed = await ok<{ entry: ChannelHistoryEntry }>('channel', 'promote', 'slim/redis:2', 'prod');
    expect(refreshed.entry.effects.amis).toEqual([{ region: 'eu-west-1', to: 'ami-0000000000000002' }]);
  }, 900_000);

  it('an update that breaks the service fails qualification: prod, its PXE assignment and AMI pointer roll back by themselves', async () => {
    expect(ids.slim2, 'the first rollout ran').toBeDefined();
    const started = Date.now();
    // no --to: the one channel that holds a version of gold/redis:2
    const res = await run<{ error: { code: string; message: string }; result: RolloutReport }>('rollout', 'gold/redis:2', '--with', broken.path, '--format', 'raw', ...QUALIFY);
    console.log(`rollout (rolled back): ${((Date.now() - started) / 1000).toFixed(1)} s; qualification ${res.json?.result?.timings.qualifyMs} ms`);
    expect(res.exitCode, res.stderr.slice(-3000)).toBe(11);
    expect(res.json.error.code).toBe('E_ROLLED_BACK');
    const report = res.json.result;
    ids.slim3 = await idOf('slim/redis:3');
    expect(report).toMatchObject({ outcome: 'rolled-back', channel: 'prod', previous: { id: ids.slim2 }, candidate: { id: ids.slim3 }, current: { id: ids.slim2 } });
    expect(report.qualification).toMatchObject({ passed: false, imageId: ids.slim3, artifact: { format: 'raw', chosenBy: 'flag' }, error: { code: 'E_SERVICE_CRASHED' } });
    // the guest console in the error shows why: the service itself said so
    expect(report.qualification!.error!.message).toContain('redis-server: broken on purpose by aim tests');
    // while qualified, prod served the candidate: the machine and the AMI pointer followed, then came back
    const [promoted, back] = report.history;
    expect(promoted).toMatchObject({ action: 'promote', imageId: ids.slim3, fromImageId: ids.slim2, rollout: report.id });
    expect(promoted!.effects).toEqual({ pxe: [{ selector: 'default', from: ids.slim2, to: ids.slim3 }], amis: [{ region: 'eu-west-1', from: 'ami-0000000000000002' }] });
    expect(back).toMatchObject({ action: 'rollback', imageId: ids.slim2, fromImageId: ids.slim3, rollout: report.id, qualification: report.qualification!.id });
    expect(back!.reason).toMatch(/^qualification \w+ of slim\/redis:3 failed: the service exited \d+ times/);
    expect(back!.effects).toEqual({ pxe: [{ selector: 'default', from: ids.slim3, to: ids.slim2 }], amis: [{ region: 'eu-west-1', to: 'ami-0000000000000002' }] });
    expect(await prod()).toMatchObject({ imageId: ids.slim2, state: 'ready', amis: [{ region: 'eu-west-1', amiId: 'ami-0000000000000002', imageId: ids.slim2 }] });
    expect(await machine()).toMatchObject({ imageId: ids.slim2, channel: 'prod' });
    const history = (await ok<{ history: ChannelHistoryEntry[] }>('channel', 'history', 'prod')).history;
    expect(history.map((e) => [e.action, e.imageId])).toEqual([
      ['promote', ids.slim1],
      ['promote', ids.slim2],
      ['qualified', ids.slim2],
      ['promote', ids.slim2],
      ['promote', ids.slim3],
      ['rollback', ids.slim2],
    ]);
    // by hand now: the broken version is never gone back to, the one before it is
    const hand = await ok<{ entry: ChannelHistoryEntry }>('channel', 'rollback', 'prod', '--reason', 'back to the first release');
    expect(hand.entry).toMatchObject({ imageId: ids.slim1, fromImageId: ids.slim2, reason: 'back to the first release' });
    expect(await machine()).toMatchObject({ imageId: ids.slim1 });
  }, 900_000);
});
