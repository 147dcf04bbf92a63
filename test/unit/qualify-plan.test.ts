import { describe, expect, it } from 'vitest';
import { chooseQualifyArtifact } from '../../src/core/lifecycle/qualify-artifact.js';
import type { PxeAssignment, PxeBootSettings } from '../../src/core/model/pxe.js';
import { parseSelector } from '../../src/core/pxe/selector.js';
import type { ProfileRecord } from '../../src/core/repository/types.js';
import { AimError, ConfigError, ExitCode, InputError, MissingToolError, ToolFailedError } from '../../src/lib/errors.js';
import { isImageFailure, planFromProfile } from '../../src/run/qualify.js';

type Run = ProfileRecord['runs'][number];
const run = (r: Partial<Run>): Run => ({ command: 'svc', probes: [], results: [], at: '', ...r });
const profile = (...runs: Run[]): ProfileRecord => ({ name: 'p', imageId: 'x', createdAt: '', updatedAt: '', runs, paths: [] });

describe('what a qualification runs, from the profile', () => {
  it('every probe of every run once, in order; the ports the runs listened on, their ready ports and the HTTP probes\' ports', () => {
    const plan = planFromProfile(
      profile(
        run({ probes: [{ kind: 'exec', command: 'redis-cli PING' }, { kind: 'http', url: 'http://127.0.0.1:8080/health', expect: { status: 204 } }], ports: [6379, 8080], readyLog: 'first', probeTimeoutMs: 3000 }),
        run({ probes: [{ kind: 'exec', command: 'redis-cli PING' }, { kind: 'http', url: 'http://localhost/' }], readyPort: 9000, readyLog: 'Ready to accept' }),
      ),
      [5000],
    );
    expect(plan.probes).toEqual([
      { kind: 'exec', command: 'redis-cli PING' },
      { kind: 'http', url: 'http://127.0.0.1:8080/health', expect: { status: 204 } },
      { kind: 'http', url: 'http://localhost/' },
    ]);
    expect(plan.ports).toEqual([80, 5000, 6379, 8080, 9000]);
    expect(plan.readyLog).toBe('Ready to accept');
    // the longest per-try bound of the runs (10 s when a run gives none)
    expect(plan.probeTimeoutMs).toBe(10_000);
  });

  it('refuses what it cannot qualify with: no probes, no port to reach the guest, a bad --port or ready-log', () => {
    expect(() => planFromProfile(profile(run({ ports: [80] })), [])).toThrow(/has no probes/);
    const exec = run({ probes: [{ kind: 'exec', command: 'true' }] });
    expect(() => planFromProfile(profile(exec), [])).toThrow(/no guest port to probe/);
    expect(planFromProfile(profile(exec), [22]).ports).toEqual([22]);
    expect(() => planFromProfile(profile(exec), [70000])).toThrow(ConfigError);
    expect(() => planFromProfile(profile({ ...exec, ports: [1], readyLog: '(' }), [])).toThrow(/not a regular expression/);
  });

  it('records as a failed qualification only what the image did (build, boot, probes), not the machine or the request', () => {
    expect(isImageFailure(new AimError('E_PROBE_FAILED', 'x', ExitCode.verifyFailed))).toBe(true);
    expect(isImageFailure(new AimError('E_SERVICE_CRASHED', 'x', ExitCode.verifyFailed))).toBe(true);
    expect(isImageFailure(new InputError('E_NO_ENTRYPOINT', 'x'))).toBe(true);
    expect(isImageFailure(new InputError('E_NO_KERNEL', 'no kernel core'))).toBe(false);
    expect(isImageFailure(new MissingToolError('qemu-system-x86_64', 'boot', 'qemu-system-x86'))).toBe(false);
    expect(isImageFailure(new ToolFailedError(['mke2fs'], 1, 'no space'))).toBe(false);
    expect(isImageFailure(new ConfigError('x'))).toBe(false);
    expect(isImageFailure(new Error('x'))).toBe(false);
  });
});

describe('which artifact a qualification boots: the one the channel ships', () => {
  const boot = (over: Partial<PxeBootSettings> = {}): PxeBootSettings => ({ platform: 'qemu', modules: [], kernel: { source: 'default', ref: 'core/kernel:bookworm', imageId: 'kcore1', version: '6.1' }, ...over });
  const assign = (selector: string, imageId: string, channel?: string, b = boot(), kernelArgs = ''): Pick<PxeAssignment, 'selector' | 'imageId' | 'boot' | 'channel' | 'kernelArgs'> => ({
    selector: parseSelector(selector),
    imageId,
    boot: b,
    kernelArgs,
    ...(channel !== undefined ? { channel } : {}),
  });

  it('raw when nothing says otherwise: no channel holds the image, or no PXE assignment follows its channel', () => {
    expect(chooseQualifyArtifact({ imageId: 'new', channels: [], assignments: [assign('default', 'old', 'prod')] })).toMatchObject({ format: 'raw', chosenBy: 'default', why: 'raw: no channel holds the image' });
    // assignments that follow another channel, or none, do not count
    const r = chooseQualifyArtifact({ imageId: 'new', channels: ['prod'], assignments: [assign('default', 'old', 'dev'), assign('52:54:00:00:00:01', 'old')] });
    expect(r).toEqual({ format: 'raw', chosenBy: 'default', channel: 'prod', why: 'raw: no PXE assignment follows channel prod' });
  });

  it('pxe when a PXE assignment follows the channel, built as that assignment boots the image', () => {
    const modules = ['e1000e'];
    const entrypoint = ['/bin/sh', '-c', 'exec /app --serve'];
    const assignments = [assign('52:54:00:00:00:01', 'old', 'prod', boot({ modules, entrypoint }), 'loglevel=4 ip=${net0/ip}'), assign('default', 'old', 'prod'), assign('rack=r1', 'old', 'dev')];
    // the candidate of a rollout: a kernel chosen for the old image is chosen anew (no kernel ref)
    const r = chooseQualifyArtifact({ imageId: 'new', channels: ['prod'], assignments });
    expect(r).toEqual({
      format: 'pxe',
      chosenBy: 'channel',
      channel: 'prod',
      // with the assignment's kernel arguments: its machines boot with them
      pxe: { selector: 'mac:52:54:00:00:00:01', platform: 'qemu', modules, entrypoint, kernelArgs: 'loglevel=4 ip=${net0/ip}' },
      why: 'pxe: PXE assignment mac:52:54:00:00:00:01 (and 1 more) follows channel prod',
    });
    // the image the assignment boots now: with the kernel pinned then; a kernel the user named stays for any image
    expect(chooseQualifyArtifact({ imageId: 'old', channels: ['prod'], assignments }).pxe).toMatchObject({ kernelRef: 'kcore1' });
    const named = [assign('default', 'old', 'prod', boot({ kernel: { source: 'flag', ref: 'core/kernel:lts', imageId: 'kcore2', version: '6.1' } }))];
    expect(chooseQualifyArtifact({ imageId: 'new', channels: ['prod'], assignments: named }).pxe).toMatchObject({ kernelRef: 'core/kernel:lts' });
    const own = [assign('default', 'old', 'prod', boot({ kernel: { source: 'image', imageId: 'old', version: '6.1' } }))];
    expect(chooseQualifyArtifact({ imageId: 'old', channels: ['prod'], assignments: own }).pxe).not.toHaveProperty('kernelRef');
  });

  it('--format wins; --format pxe still boots as a following assignment does', () => {
    const assignments = [assign('default', 'old', 'prod')];
    expect(chooseQualifyArtifact({ imageId: 'new', format: 'raw', channels: ['prod'], assignments })).toEqual({ format: 'raw', chosenBy: 'flag', why: '--format raw' });
    expect(chooseQualifyArtifact({ imageId: 'new', format: 'qcow2', channels: [], assignments })).toMatchObject({ format: 'qcow2', chosenBy: 'flag' });
    expect(chooseQualifyArtifact({ imageId: 'new', format: 'pxe', channels: [], assignments })).toEqual({ format: 'pxe', chosenBy: 'flag', why: '--format pxe' });
    expect(chooseQualifyArtifact({ imageId: 'new', format: 'pxe', channels: ['prod'], assignments })).toMatchObject({
      format: 'pxe',
      chosenBy: 'flag',
      channel: 'prod',
      pxe: { selector: 'default', platform: 'qemu' },
      why: '--format pxe, booted as PXE assignment default follows channel prod',
    });
  });

  it('refuses to qualify a PXE boot QEMU cannot emulate (EC2 machines), unless --format raw', () => {
    const assignments = [assign('default', 'old', 'prod', boot({ platform: 'ec2' }))];
    expect(() => chooseQualifyArtifact({ imageId: 'new', channels: ['prod'], assignments })).toThrow(ConfigError);
    expect(() => chooseQualifyArtifact({ imageId: 'new', channels: ['prod'], assignments })).toThrow(/boots ec2 machines/);
    expect(chooseQualifyArtifact({ imageId: 'new', format: 'raw', channels: ['prod'], assignments }).format).toBe('raw');
  });
});
