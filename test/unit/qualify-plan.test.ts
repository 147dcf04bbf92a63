import { describe, expect, it } from 'vitest';
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
