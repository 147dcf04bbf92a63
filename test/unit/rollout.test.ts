import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { promoteImage } from '../../src/core/lifecycle/channels.js';
import { qualifyArtifactFor } from '../../src/core/lifecycle/qualify-artifact.js';
import { runRollout, type PreparedQualifier, type RolloutDeps, type RolloutReport } from '../../src/core/lifecycle/rollout.js';
import type { UpdateResult } from '../../src/core/lifecycle/update-image.js';
import type { QualificationRecord } from '../../src/core/model/channel.js';
import { parseSelector } from '../../src/core/pxe/selector.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { AimError, ExitCode, ToolFailedError } from '../../src/lib/errors.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { addBootableImage, putFile } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The rollout's decisions without QEMU: the update and the qualifier are stand-ins that the test
 * drives; channels, PXE assignments, AMI pointers and history are the real catalog's.
 */
describe('aim rollout: update → qualify → promote, rolled back by itself', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  let n = 0;
  const reporter = new RecordingReporter();

  beforeAll(async () => {
    tmp = await tempDir('aim-rollout-');
    await initRepository(join(tmp.dir, 'repo'));
    repo = await openRepository(join(tmp.dir, 'repo'));
  });
  afterAll(async () => {
    await repo?.close();
    await tmp?.cleanup();
  });

  /** A new bootable image tagged app:N. */
  const newImage = async () => {
    const id = await addBootableImage(repo, [await putFile(repo, '/version', String(++n))]);
    await repo.catalog.setTag(`app:${n}`, id);
    return { id, ref: `app:${n}` };
  };
  const record = (image: { id: string; ref: string }, passed: boolean): QualificationRecord => ({
    id: `q${++n}`,
    imageId: image.id,
    imageRef: image.ref,
    profile: 'app',
    passed,
    artifact: { format: 'raw', bytes: 1, sha256: '' },
    ports: [80],
    probes: [{ probe: 'http://127.0.0.1:80/', expectation: 'status 2xx', met: passed, tries: 3, readyMs: 1000, ...(passed ? { status: 200 } : { status: 500, unmet: 'HTTP 500, expected 2xx' }) }],
    timings: { buildMs: 1, totalMs: 2 },
    ...(passed ? {} : { error: { code: 'E_PROBE_FAILED', message: 'probe http://127.0.0.1:80/ did not meet its expectation (status 2xx) in 3 tries over 1.0 s; last: HTTP 500, expected 2xx\n--- last output ---' } }),
    by: { user: 't', host: 'h', pid: 1 },
    startedAt: new Date().toISOString(),
    finishedAt: new Date().toISOString(),
  });
  const updateTo = (image: { id: string; ref: string }) => async () => ({ gold: { ...image, created: true }, slim: { ...image }, packages: [{ name: 'app', from: '1', to: '2' }] }) as unknown as UpdateResult;
  /** A qualifier whose run() calls `during` (to look at the catalog mid-qualification), then passes or fails as told. */
  const qualifier = (outcome: 'pass' | 'fail' | Error, seen: { during?: () => Promise<void>; disposed?: number; asked?: unknown } = {}): RolloutDeps['prepareQualification'] =>
    async (image): Promise<PreparedQualifier> => {
      seen.asked = image;
      return {
        async run() {
          await seen.during?.();
          if (outcome instanceof Error) throw outcome;
          const q = record(image, outcome === 'pass');
          await repo.catalog.channels.putQualification(q);
          if (outcome === 'pass') return q;
          throw new AimError('E_QUALIFY_FAILED', `qualification ${q.id} failed`, ExitCode.verifyFailed, { result: q });
        },
        async dispose() {
          seen.disposed = (seen.disposed ?? 0) + 1;
        },
      };
    };
  const assignment = async (selector: string) => (await repo.catalog.pxe.assignments()).find((a) => a.selector.key === selector)!;
  let current: { id: string; ref: string };

  beforeEach(async () => {
    // prod holds a qualified version that a PXE machine follows
    current = await newImage();
    await repo.catalog.channels.putQualification(record(current, true));
    await promoteImage(repo, { image: current.ref, channel: 'prod' }, reporter);
    const boot = { platform: 'qemu' as const, modules: [], entrypoint: ['/app'], kernel: { source: 'image' as const, imageId: current.id, version: '6.1.0-test' } };
    await repo.catalog.pxe.assign({ selector: parseSelector('default'), imageRef: current.ref, imageId: current.id, boot, kernelArgs: '', channel: 'prod' });
  });

  it('a candidate that passes stays in the channel, and what follows the channel with it', async () => {
    const next = await newImage();
    const seen: { during?: () => Promise<void>; disposed?: number; asked?: unknown } = {};
    let midway: unknown;
    seen.during = async () => {
      midway = { channel: await repo.catalog.channels.get('prod'), pxe: (await assignment('default')).imageId };
    };
    const report = await runRollout(repo, { name: current.ref, with: ['fix.deb'], channel: 'prod' }, { update: updateTo(next), prepareQualification: qualifier('pass', seen) }, reporter);
    // while it was qualified, the channel served the candidate: the PXE machine too
    expect(midway).toMatchObject({ channel: { imageId: next.id, state: 'qualifying', rollout: { id: report.id, pid: process.pid, host: hostname() } }, pxe: next.id });
    expect(report).toMatchObject({ outcome: 'promoted', previous: current, candidate: next, current: next, qualification: { passed: true } });
    expect(report.history.map((e) => e.rollout)).toEqual([report.id, report.id]);
    expect(report.history.map((e) => [e.action, e.imageId])).toEqual([
      ['promote', next.id],
      ['qualified', next.id],
    ]);
    expect(await repo.catalog.channels.get('prod')).toMatchObject({ imageId: next.id, state: 'ready' });
    expect((await repo.catalog.channels.get('prod'))!.rollout).toBeUndefined();
    expect((await assignment('default')).imageId).toBe(next.id);
    expect(seen.disposed).toBe(1);
    // the qualification was asked for the channel, whose machines decide what artifact it boots
    expect(seen.asked).toEqual({ ...next, channel: 'prod' });
  });

  it('qualification boots what the channel ships: a PXE boot as its following assignment does, else a raw disk', async () => {
    const next = await newImage();
    expect(await qualifyArtifactFor(repo, { imageId: current.id })).toMatchObject({ format: 'pxe', chosenBy: 'channel', channel: 'prod', pxe: { selector: 'default', platform: 'qemu', entrypoint: ['/app'] } });
    // a rollout's candidate is held by no channel yet: the rollout names its channel
    expect(await qualifyArtifactFor(repo, { imageId: next.id })).toMatchObject({ format: 'raw', chosenBy: 'default' });
    expect(await qualifyArtifactFor(repo, { imageId: next.id, channel: 'prod' })).toMatchObject({ format: 'pxe', pxe: { selector: 'default' } });
    expect(await qualifyArtifactFor(repo, { imageId: next.id, channel: 'prod', format: 'raw' })).toMatchObject({ format: 'raw', chosenBy: 'flag' });
    await repo.catalog.pxe.unassign('default');
    expect(await qualifyArtifactFor(repo, { imageId: current.id })).toMatchObject({ format: 'raw', chosenBy: 'default', why: 'raw: no PXE assignment follows channel prod' });
  });

  it('a candidate that fails qualification: channel, PXE assignment and history roll back by themselves, saying why', async () => {
    const bad = await newImage();
    let midway: string | undefined;
    const seen = { during: async () => void (midway = (await assignment('default')).imageId), disposed: 0 };
    const err = (await runRollout(repo, { name: current.ref, with: ['broken.deb'] }, { update: updateTo(bad), prepareQualification: qualifier('fail', seen) }, reporter).catch((e: unknown) => e)) as AimError;
    expect(midway).toBe(bad.id);
    expect(err).toMatchObject({ code: 'E_ROLLED_BACK', exitCode: 11 });
    const report = err.result as RolloutReport;
    expect(report).toMatchObject({ outcome: 'rolled-back', channel: 'prod', previous: current, candidate: bad, current, qualification: { passed: false, imageId: bad.id } });
    expect(report.reason).toMatch(/^qualification q\d+ of app:\d+ failed: probe http:\/\/127\.0\.0\.1:80\/ did not meet its expectation .*HTTP 500/);
    expect(await repo.catalog.channels.get('prod')).toMatchObject({ imageId: current.id, state: 'ready' });
    expect((await assignment('default')).imageId).toBe(current.id);
    const history = await repo.catalog.channels.history('prod', 2);
    expect(history).toEqual(report.history);
    expect(history.map((e) => [e.action, e.imageId, e.fromImageId])).toEqual([
      ['promote', bad.id, current.id],
      ['rollback', current.id, bad.id],
    ]);
    expect(history[1]!.reason).toContain(`qualification ${report.qualification!.id} of ${bad.ref} failed`);
    expect(history.map((e) => e.rollout)).toEqual([report.id, report.id]);
    expect(history[1]!.qualification).toBe(report.qualification!.id);
    expect(history[1]!.effects.pxe).toEqual([{ selector: 'default', from: bad.id, to: current.id }]);
    expect(seen.disposed).toBe(1);
  });

  it('a qualification that cannot run (a tool fails, Ctrl-C) rolls back too: the candidate was never qualified', async () => {
    const next = await newImage();
    const err = (await runRollout(repo, { name: current.ref, with: ['x.deb'] }, { update: updateTo(next), prepareQualification: qualifier(new ToolFailedError(['qemu-system-x86_64'], 1, 'could not allocate memory')) }, reporter).catch((e: unknown) => e)) as AimError;
    expect(err).toMatchObject({ code: 'E_ROLLED_BACK' });
    expect((err.result as RolloutReport).reason).toMatch(/could not be qualified: qemu-system-x86_64 failed/);
    expect((await repo.catalog.channels.get('prod'))!.imageId).toBe(current.id);

    const stop = new AbortController();
    const another = await newImage();
    const cancelled = new AimError('E_INTERRUPTED', 'interrupted (Ctrl-C)', 130);
    const deps: RolloutDeps = {
      update: updateTo(another),
      prepareQualification: async () => ({
        async run() {
          stop.abort(cancelled);
          throw cancelled;
        },
        async dispose() {},
      }),
    };
    await expect(runRollout(repo, { name: current.ref, with: ['x.deb'], signal: stop.signal }, deps, reporter)).rejects.toBe(cancelled);
    expect(await repo.catalog.channels.get('prod')).toMatchObject({ imageId: current.id, state: 'ready' });
    expect((await repo.catalog.channels.history('prod', 1))[0]!.reason).toContain('interrupted (Ctrl-C)');
  });

  it('a candidate that cannot even be built is rejected before the channel moves', async () => {
    const next = await newImage();
    const entries = (await repo.catalog.channels.history('prod')).length;
    const q = record(next, false);
    const deps: RolloutDeps = {
      update: updateTo(next),
      prepareQualification: async () => {
        throw new AimError('E_QUALIFY_FAILED', 'qualification failed: entrypoint /app is not in the image', ExitCode.verifyFailed, { result: q });
      },
    };
    const err = (await runRollout(repo, { name: current.ref, with: ['x.deb'] }, deps, reporter).catch((e: unknown) => e)) as AimError;
    expect(err).toMatchObject({ code: 'E_ROLLOUT_REJECTED', exitCode: 11 });
    expect(err.result).toMatchObject({ outcome: 'rejected', current, history: [] });
    expect(await repo.catalog.channels.history('prod')).toHaveLength(entries);
  });

  it('an update that changes nothing rolls out nothing; a busy or ambiguous channel is refused', async () => {
    const report = await runRollout(repo, { name: current.ref, with: ['same.deb'] }, { update: updateTo(current), prepareQualification: qualifier('pass') }, reporter);
    expect(report).toMatchObject({ outcome: 'unchanged', current, history: [] });

    await promoteImage(repo, { image: current.ref, channel: 'dev' }, reporter);
    await expect(runRollout(repo, { name: current.ref, with: ['x.deb'] }, { update: updateTo(current), prepareQualification: qualifier('pass') }, reporter)).rejects.toMatchObject({
      code: 'E_CONFIG',
      message: expect.stringMatching(/channels .*dev.*prod|channels .*prod.*dev/),
    });
    await repo.catalog.channels.move({ channel: 'dev', action: 'promote', imageId: current.id, imageRef: current.ref, expect: { imageId: current.id }, state: 'qualifying', rollout: { id: 'other', pid: process.pid, host: hostname() }, pxe: [], amis: [], by: { user: 't', host: 'h', pid: 1 } });
    await expect(runRollout(repo, { name: current.ref, with: ['x.deb'], channel: 'dev' }, { update: updateTo(current), prepareQualification: qualifier('pass') }, reporter)).rejects.toMatchObject({ code: 'E_BUSY', exitCode: 9 });
    await promoteImage(repo, { image: current.ref, channel: 'dev' }, reporter).catch(() => undefined);
  });
});
