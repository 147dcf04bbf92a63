import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeAction } from '../../src/core/runtime/plan.js';
import { aim } from '../helpers/cli.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * A daemon that cannot start without its runtime directory: Debian's redis-server, switched to
 * its own user, listening on a unix socket in /run/redis, which only its unit's
 * RuntimeDirectory=redis (mode 2755, User=redis) creates. gold → profile → slim → verify.
 */
let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

const SOCKET = '/run/redis/redis.sock';
const WORKLOAD = `setpriv --reuid=redis --regid=redis --init-groups redis-server /etc/redis/redis.conf --daemonize no --unixsocket ${SOCKET}`;
const PROBE = `redis-cli -s ${SOCKET} set k v && redis-cli -s ${SOCKET} get k`;
const profileArgs = (name: string, ...extra: string[]) => ['profile', 'run', 'gold/redis:1', '--run', WORKLOAD, '--ready-port', '6379', '--probe-exec', PROBE, '--name', name, '--duration', '2s', ...extra];

interface ProfileJson {
  profile: { uids?: number[]; runs: { units?: string[] }[] };
  run: { probes: { exitCode: number; outputTail: string }[]; runtime: { units: string[]; detected: boolean; actions: number } };
}
interface SlimJson {
  report: { runtime?: { actions: RuntimeAction[]; units: string[] } };
  explanations: { path: string; kept: boolean; created?: boolean; reasons: string[] }[];
}

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  await run('repo', 'init');
  expect((await run('image', 'import', await goldTar('redis'), '--tag', 'gold/redis:1')).exitCode).toBe(0);
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('runtime state of a real daemon (redis-server, RuntimeDirectory=redis)', () => {
  it('without its unit the runtime directory is missing and the daemon does not start', async () => {
    const res = await run('profile', ...profileArgs('none', '--unit', 'fstrim.service').slice(1));
    expect(res.exitCode).not.toBe(0);
    expect(res.stdout + res.stderr).toMatch(/redis\.sock|exited/i);
    expect((await run<{ profiles: unknown[] }>('profile', 'list')).json.profiles).toEqual([]);
  });

  it("finds redis-server.service from the program, creates /run/redis before redis starts, and records the user it switched to", async () => {
    const res = await run<ProfileJson>(...profileArgs('rd'));
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.run.runtime).toMatchObject({ units: ['redis-server.service'], detected: true });
    expect(res.json.run.probes[0]).toMatchObject({ exitCode: 0 });
    expect(res.json.profile.runs[0]!.units).toEqual(['redis-server.service']);
    expect(res.json.profile.uids?.filter((u) => u !== 0).length).toBeGreaterThan(0);
  });

  it('slims keeping the user, the state directory and the plan, and explains each', async () => {
    const res = await run<SlimJson>('slim', 'gold/redis:1', '--profile', 'rd', '--tag', 'slim/redis:1', '--explain', '/run/redis', '--explain', '/etc/shadow', '--explain', '/var/lib/redis');
    expect(res.exitCode, res.stderr).toBe(0);
    const rt = res.json.report.runtime!;
    expect(rt.units).toEqual(['redis-server.service']);
    expect(rt.actions).toContainEqual(expect.objectContaining({ kind: 'dir', path: '/run/redis', mode: 0o2755, user: 'redis', group: 'redis' }));
    const [runDir, shadow, state] = res.json.explanations;
    expect(runDir).toMatchObject({ created: true, kept: false });
    expect(runDir!.reasons[0]).toMatch(/directory \/run\/redis \(mode 2755, owner redis:redis\), from RuntimeDirectory= of redis-server\.service/);
    expect(shadow).toMatchObject({ kept: true });
    expect(shadow!.reasons).toContain("/etc/shadow holds the passwd/group/shadow entries of user 'redis', whom the workload switched to");
    expect(state).toMatchObject({ kept: true });
    expect(state!.reasons[0]).toMatch(/chdir'd into/);
  });

  it('verifies: the slim image makes /run/redis from its recorded plan and answers like gold', async () => {
    type Round = { exitCode: number; met: boolean };
    const res = await run<{ ok: boolean; probes: { verdict: string; gold: Round[]; slim: Round[] }[] }>('verify', 'slim/redis:1', '--against', 'gold/redis:1', '--profile', 'rd');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.ok).toBe(true);
    expect(res.json.probes).toHaveLength(1);
    const [probe] = res.json.probes;
    expect(probe!.verdict).toBe('same');
    // every round in both images met the expectation (exit 0), not merely the same failure twice
    for (const round of [...probe!.gold, ...probe!.slim]) expect(round).toMatchObject({ exitCode: 0, met: true });
    expect(probe!.slim).toHaveLength(3);
  }, 300_000);
});
