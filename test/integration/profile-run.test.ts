import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

interface RunJson {
  profile: { runs: unknown[]; paths: { path: string; ok: boolean; exec: boolean }[] };
  run: { probes: { kind: string; status?: number; bytes: number; met: boolean; tries: number; readyMs: number }[]; paths: number };
}

interface VerifyJson {
  ok: boolean;
  profile: string;
  repeat: number;
  probes: { probe: string; verdict: string; same: boolean; gold: { status?: number; sha256?: string; met: boolean }[]; slim: { status?: number; sha256?: string; met: boolean }[] }[];
  missing: { path: string }[];
}

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  await run('repo', 'init');
  expect((await run('image', 'import', await goldTar('nginx'), '--tag', 'gold/nginx:1')).exitCode).toBe(0);
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('aim profile run (nginx gold image)', () => {
  it('traces nginx serving a page and records what it used', async () => {
    const res = await run<RunJson>('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'web', '--duration', '3s');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.run.probes[0]).toMatchObject({ kind: 'http', status: 200 });
    const used = new Map(res.json.profile.paths.map((p) => [p.path, p]));
    expect(used.get('/usr/sbin/nginx')?.exec).toBe(true);
    expect(used.get('/var/www/html/index.nginx-debian.html')?.ok).toBe(true);
    expect(used.get('/etc/nginx/nginx.conf')?.ok).toBe(true);
    expect([...used.keys()].some((p) => p.includes('libssl.so.3'))).toBe(true);
    // nothing from the host side of the chroot
    expect([...used.keys()].some((p) => p.startsWith(tmp.dir) || p.includes('/node_modules/'))).toBe(false);
    // the materialised image and its mounts are gone
    expect((await readdir(join(repo, 'tmp'))).length).toBe(0);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(repo);
  });

  it('merges a second run into the same profile and lists it', async () => {
    const res = await run<RunJson>('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/missing', '--expect-status', '404', '--name', 'web', '--duration', '2s');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.run.probes[0]).toMatchObject({ status: 404, met: true });
    expect(res.json.profile.runs).toHaveLength(2);
    const list = await run<{ profiles: { name: string }[] }>('profile', 'list');
    expect(list.json.profiles.map((p) => p.name)).toEqual(['web']);
    const show = await run<{ paths: { path: string }[] }>('profile', 'show', 'web');
    expect(show.json.paths.map((p) => p.path)).toContain('/usr/sbin/nginx');
  });

  it('composes a slim image that is at least 10x smaller and serves the same page', async () => {
    const slim = await run<{ id: string; report: { gold: { bytes: number }; slim: { bytes: number; files: number }; removedByPackage: { package: string }[] }; explanations: { path: string; kept: boolean; reasons: string[] }[] }>(
      'slim', 'gold/nginx:1', '--profile', 'web', '--tag', 'slim/nginx:1', '--explain', '/lib64/ld-linux-x86-64.so.2', '--explain', '/usr/bin/perl',
    );
    expect(slim.exitCode, slim.stderr).toBe(0);
    const r = slim.json.report;
    expect(r.gold.bytes / r.slim.bytes).toBeGreaterThanOrEqual(10);
    expect(r.slim.files).toBeLessThan(100);
    expect(r.removedByPackage.map((p) => p.package)).toContain('perl-base');
    const ins = await run<{ slimReport: { profile: string; removedByPackage: { package: string }[] } }>('image', 'inspect', 'slim/nginx:1');
    expect(ins.json.slimReport.profile).toBe('web');
    expect(ins.json.slimReport.removedByPackage.length).toBeGreaterThan(10);
    const [loader, perl] = slim.json.explanations;
    expect(loader!.kept).toBe(true);
    expect(loader!.reasons.join('\n')).toMatch(/PT_INTERP/);
    expect(perl!.kept).toBe(false);

    const gold = await run<RunJson & { run: { probes: { sha256: string }[] } }>('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'gold-check', '--duration', '2s');
    const thin = await run<RunJson & { run: { probes: { sha256: string }[] } }>('profile', 'run', 'slim/nginx:1', '--run', "nginx -g 'daemon off;'", '--ready-port', '80', '--probe', 'http://127.0.0.1:80/', '--name', 'slim-check', '--duration', '2s');
    expect(thin.exitCode, thin.stderr).toBe(0);
    expect(thin.json.run.probes[0]).toMatchObject({ status: 200, sha256: gold.json.run.probes[0]!.sha256 });
  });

  it('verify passes for the slim image and fails, naming the missing file, for one slimmed from too little', async () => {
    // gold image and profile: those the slim image records
    const ok = await run<VerifyJson>('verify', 'slim/nginx:1', '--repeat', '2');
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({ ok: true, profile: 'web', repeat: 2 });
    expect(ok.json.probes.map((p) => [p.probe, p.verdict, p.gold.length, p.slim.length])).toEqual([
      ['http://127.0.0.1:80/', 'same', 2, 2],
      ['http://127.0.0.1:80/missing', 'same', 2, 2],
    ]);
    expect(ok.json.probes[1]!.slim[0]).toMatchObject({ status: 404, met: true });

    // a profile of `nginx -t` never reads the page it would serve
    expect((await run('profile', 'run', 'gold/nginx:1', '--run', 'nginx -t', '--name', 'conftest', '--duration', '2s')).exitCode).toBe(0);
    expect((await run('slim', 'gold/nginx:1', '--profile', 'conftest', '--tag', 'slim/nginx:conftest')).exitCode).toBe(0);
    // slim answers 404 where gold answers 200: tried until the ready timeout, then compared
    const bad = await run<{ error: { code: string; message: string }; result: VerifyJson }>('verify', 'slim/nginx:conftest', '--against', 'gold/nginx:1', '--profile', 'web', '--ready-timeout', '5s');
    expect(bad.exitCode).toBe(11);
    expect(bad.json.error.code).toBe('E_VERIFY_FAILED');
    const report = bad.json.result;
    expect(report.ok).toBe(false);
    expect(report.probes[0]).toMatchObject({ verdict: 'different', same: false });
    expect(report.probes[0]!.slim.every((o) => o.status === 404 && !o.met)).toBe(true);
    // nginx stats the document root first; the slim image has no /var/www/html at all
    expect(report.missing.map((m) => m.path)).toContain('/var/www/html');
  }, 900_000); // two verifies, each runs the workload in gold and in slim

  it('verify tells a probe that varies in gold itself (flaky) from a difference, and fails on it unless allowed', async () => {
    const uuid = 'cat /proc/sys/kernel/random/uuid';
    expect((await run('profile', 'run', 'gold/nginx:1', '--run', "nginx -g 'daemon off;'", '--probe', 'http://127.0.0.1:80/', '--probe-exec', uuid, '--name', 'random', '--duration', '2s')).exitCode).toBe(0);
    expect((await run('slim', 'gold/nginx:1', '--profile', 'random', '--tag', 'slim/nginx:random')).exitCode).toBe(0);
    const strict = await run<{ error: { code: string; message: string }; result: VerifyJson }>('verify', 'slim/nginx:random');
    expect(strict.exitCode).toBe(11);
    expect(strict.json.error.code).toBe('E_VERIFY_FLAKY');
    expect(strict.json.result.probes.map((p) => p.verdict)).toEqual(['same', 'flaky']);
    expect(new Set(strict.json.result.probes[1]!.gold.map((o) => o.sha256)).size).toBe(3);
    const allowed = await run<VerifyJson>('verify', 'slim/nginx:random', '--allow-flaky');
    expect(allowed.exitCode, allowed.stderr).toBe(0);
    expect(allowed.json.ok).toBe(true);
    expect(allowed.json.probes.map((p) => p.verdict)).toEqual(['same', 'flaky']);
  }, 900_000); // two verifies, each runs the workload in gold and in slim

  it('waits for a workload that listens only after a while, with no ready port: the probe is tried until it answers', async () => {
    const res = await run<RunJson & { run: { ready: { ms: number; tries: number } } }>('profile', 'run', 'gold/nginx:1', '--run', "sleep 2; exec nginx -g 'daemon off;'", '--probe', 'http://127.0.0.1:80/', '--name', 'late', '--duration', '1s');
    expect(res.exitCode, res.stderr).toBe(0);
    const probe = res.json.run.probes[0]!;
    // (without retries the first try, made while the workload sleeps, would fail the run)
    expect(probe).toMatchObject({ status: 200, met: true });
    expect(probe.readyMs).toBeGreaterThan(0);
    expect(res.json.run.ready).toMatchObject({ ms: probe.readyMs, tries: probe.tries });
  });

  it('reports a workload that cannot start, with its output', async () => {
    const res = await run<{ error: { code: string; message: string } }>('profile', 'run', 'gold/nginx:1', '--run', 'no-such-daemon --foreground', '--ready-port', '80', '--name', 'broken', '--duration', '2s');
    expect(res.exitCode).not.toBe(0);
    expect(res.json.error.code).toMatch(/^E_PROFILE_/);
    expect(res.json.error.message).toMatch(/no-such-daemon/);
    expect((await run<{ profiles: { name: string }[] }>('profile', 'list')).json.profiles.map((p) => p.name)).not.toContain('broken');
    expect((await readdir(join(repo, 'tmp'))).length).toBe(0);
  });
});
