/**
 * aim impact on real Debian images: nginx and redis gold images, profiled and slimmed, and
 * patched packages rebuilt with dpkg-deb from the gold's installed libssl3 and libc6 — a changed
 * libssl file both slim images keep and use, a changed file they dropped, a changed file they
 * keep but never open — then hand-written OSV advisories giving the same verdicts at package
 * level, a Packages index and PACKAGE=VERSION. Expectations come from the images' own facts
 * (slim manifests, profile traces) read independently of the impact index.
 */
import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageFindings, type ImpactReport, type Verdict } from '../../src/core/lifecycle/impact.js';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim, projectRoot } from '../helpers/cli.js';
import { patchedDeb, type PatchedDeb } from '../helpers/debs-from-gold.js';
import { prepareSlimNginxOnly } from '../boot/helpers/slim-nginx.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

const LIB = '/usr/lib/x86_64-linux-gnu';
const OSV = join(projectRoot, 'test', 'fixtures', 'osv');

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = ImpactReport>(...args: string[]) => aim<T>([...args, '--repo', repo]);
const impact = (...args: string[]) => run('impact', ...args);

/** What each slim image keeps and what its profile used, from the catalog itself (not the impact index). */
const facts = new Map<string, { kept: Set<string>; traced: Set<string> }>();
const debs: Record<'ssl' | 'dropped' | 'unused', PatchedDeb> = {} as never;

/** The report of a run that may exit 13: stdout is the result, or the error document's result. */
function report(res: { exitCode: number; json: unknown; stderr: string }): ImpactReport {
  expect([0, 13], res.stderr).toContain(res.exitCode);
  const doc = res.json as ImpactReport & { error?: { code: string }; result?: ImpactReport };
  const r = res.exitCode === 13 ? doc.result! : doc;
  if (res.exitCode === 13) expect(doc.error?.code).toBe('E_IMPACT_IN_USE');
  // the exit code says whether an image uses a changed file
  expect(res.exitCode).toBe(r.summary.inUse > 0 ? 13 : 0);
  return r;
}
const verdictOf = (r: ImpactReport, tag: string) => imageFindings(r).find((i) => i.tags.includes(tag))!;

/** The verdict the facts give for a slim image and changed (canonical) paths. */
function expected(tag: string, changed: string[]): Verdict {
  const f = facts.get(tag)!;
  const kept = changed.filter((p) => f.kept.has(p));
  if (kept.length === 0) return 'not-in-slim';
  return kept.some((p) => f.traced.has(p)) ? 'kept-and-used' : 'kept-not-used';
}

beforeAll(async () => {
  tmp = await tempDir('aim-impact-it-');
  repo = join(tmp.dir, 'repo');
  // gold/nginx:1, its profile web and slim/nginx:1
  await prepareSlimNginxOnly(repo);
  const [nginx, redis] = await Promise.all([goldTar('nginx'), goldTar('redis')]);
  const imported = await run('image', 'import', redis, '--tag', 'gold/redis:1');
  expect(imported.exitCode, imported.stderr).toBe(0);
  const kv = await run('profile', 'run', 'gold/redis:1', '--run', "redis-server --port 6379 --protected-mode no --save '' --appendonly no", '--ready-log', 'Ready to accept connections', '--probe-exec', 'redis-cli PING', '--name', 'kv', '--duration', '3s');
  expect(kv.exitCode, kv.stderr).toBe(0);
  const slim = await run('slim', 'gold/redis:1', '--profile', 'kv', '--tag', 'slim/redis:1');
  expect(slim.exitCode, slim.stderr).toBe(0);
  // the facts, straight from the catalog: slim manifests and the profiles' traced paths (resolved)
  const opened = await openRepository(repo);
  try {
    for (const [tag, profile] of [['slim/nginx:1', 'web'], ['slim/redis:1', 'kv']] as const) {
      const id = (await opened.catalog.resolve(tag))!;
      const kept = new Set((await opened.catalog.entries(id)).filter((e) => e.type === 'file').map((e) => e.path));
      const p = (await opened.catalog.getProfile(profile))!;
      const traced = new Set(p.paths.filter((x) => x.ok).map((x) => x.path.replace(/^\/lib\//, '/usr/lib/')));
      facts.set(tag, { kept, traced });
    }
  } finally {
    await opened.close();
  }
  // patched packages from the nginx gold tree
  const root = join(tmp.dir, 'nginx-root');
  await mkdir(root);
  await execa('tar', ['-xpf', nginx, '-C', root, '--numeric-owner']);
  const out = join(tmp.dir, 'debs');
  await mkdir(out);
  debs.ssl = await patchedDeb(root, 'libssl3', { change: [`${LIB}/libssl.so.3`], suffix: '+aimtest1', out });
  debs.dropped = await patchedDeb(root, 'libssl3', { change: [`${LIB}/ossl-modules/legacy.so`], suffix: '+aimtest2', out });
  debs.unused = await patchedDeb(root, 'libc6', { change: ['/lib/x86_64-linux-gnu/libnss_dns.so.2'], suffix: '+aimtest1', out });
}, 1_800_000);
afterAll(async () => tmp?.cleanup());

describe('aim impact with patched Debian packages (content compared)', () => {
  it('the premises hold: both slim images keep and use libssl.so.3, drop legacy.so; nginx keeps libnss_dns but never opens it', () => {
    for (const tag of ['slim/nginx:1', 'slim/redis:1']) {
      const f = facts.get(tag)!;
      expect(f.kept.has(`${LIB}/libssl.so.3`) && f.traced.has(`${LIB}/libssl.so.3`), tag).toBe(true);
      expect(f.kept.has(`${LIB}/ossl-modules/legacy.so`), tag).toBe(false);
    }
    expect(facts.get('slim/nginx:1')!.kept.has(`${LIB}/libnss_dns.so.2`)).toBe(true);
    expect(facts.get('slim/nginx:1')!.traced.has(`${LIB}/libnss_dns.so.2`)).toBe(false);
  });

  it('a changed libssl.so.3: kept and used by both slim images; exit 13', async () => {
    const r = report(await impact(debs.ssl.path));
    expect(r.update).toMatchObject({ kind: 'deb', targets: 1 });
    for (const tag of ['slim/nginx:1', 'slim/redis:1']) {
      const img = verdictOf(r, tag);
      expect(img, tag).toMatchObject({ kind: 'slim', verdict: 'kept-and-used', inUse: true });
      expect(img.packages, tag).toEqual([
        expect.objectContaining({ binary: 'libssl3', source: 'openssl', fixed: debs.ssl.version, kept: [`${LIB}/libssl.so.3`], traced: [`${LIB}/libssl.so.3`], verdict: 'kept-and-used' }),
      ]);
    }
    for (const tag of ['gold/nginx:1', 'gold/redis:1']) expect(verdictOf(r, tag), tag).toMatchObject({ kind: 'gold', verdict: 'present' });
    // against the gold it was built from, exactly one file differs
    const nginxGold = verdictOf(r, 'gold/nginx:1');
    const change = r.changes.find((c) => c.key === nginxGold.packages[0]!.change)!;
    expect(change).toMatchObject({ basis: 'content', installed: debs.ssl.installed, files: [{ path: `${LIB}/libssl.so.3`, change: 'modified' }] });
    expect(r.summary).toMatchObject({ images: 4, 'kept-and-used': 2, present: 2 });
  });

  it('a changed file the slim images dropped (legacy.so): present but not in the slim image; exit 0', async () => {
    const r = report(await impact(debs.dropped.path));
    for (const tag of ['slim/nginx:1', 'slim/redis:1']) expect(verdictOf(r, tag), tag).toMatchObject({ verdict: 'not-in-slim', inUse: false, packages: [expect.objectContaining({ kept: [], traced: [] })] });
    for (const tag of ['gold/nginx:1', 'gold/redis:1']) expect(verdictOf(r, tag), tag).toMatchObject({ verdict: 'present', inUse: false });
    expect(r.summary.inUse).toBe(0);
  });

  it('a changed file kept but never opened (libnss_dns, listed through /lib): kept but not used', async () => {
    const r = report(await impact(debs.unused.path));
    const nginx = verdictOf(r, 'slim/nginx:1');
    expect(nginx).toMatchObject({ verdict: 'kept-not-used', inUse: false });
    expect(nginx.packages).toEqual([expect.objectContaining({ binary: 'libc6', source: 'glibc', kept: [`${LIB}/libnss_dns.so.2`], traced: [] })]);
    expect(verdictOf(r, 'slim/redis:1').verdict).toBe(expected('slim/redis:1', [`${LIB}/libnss_dns.so.2`]));
    const change = r.changes.find((c) => c.key === nginx.packages[0]!.change)!;
    expect(change.files).toEqual([{ path: `${LIB}/libnss_dns.so.2`, change: 'modified' }]);
  });

  it('a folder of the three: each image gets its worst verdict, each package its own', async () => {
    const r = report(await impact(join(tmp.dir, 'debs')));
    expect(r.update).toMatchObject({ kind: 'deb', targets: 3 });
    const nginx = verdictOf(r, 'slim/nginx:1');
    expect(nginx.verdict).toBe('kept-and-used');
    expect(nginx.packages.map((p) => [p.binary, p.fixed, p.verdict]).sort()).toEqual(
      [
        ['libc6', debs.unused.version, 'kept-not-used'],
        ['libssl3', debs.ssl.version, 'kept-and-used'],
        ['libssl3', debs.dropped.version, 'not-in-slim'],
      ].sort(),
    );
  });

  it('prints a table grouped by verdict on a terminal', async () => {
    const r = await execa(process.execPath, [join(projectRoot, 'bin', 'run.js'), 'impact', join(tmp.dir, 'debs'), '--repo', repo], { reject: false });
    expect(r.exitCode).toBe(13);
    const out = r.stdout;
    const at = (s: string) => out.indexOf(s);
    expect(at('KEPT AND USED')).toBeGreaterThan(-1);
    expect(at('KEPT AND USED')).toBeLessThan(at('KEPT BUT NOT USED'));
    expect(at('KEPT BUT NOT USED')).toBeLessThan(at('PRESENT BUT NOT IN THE SLIM IMAGE'));
    expect(at('PRESENT (gold')).toBeGreaterThan(at('PRESENT BUT NOT IN THE SLIM IMAGE'));
    expect(out).toMatch(/\d slim images?: [^\n]*slim\/nginx:1 \([0-9a-f]{12}\)[^\n]*\n +PACKAGE +VERDICT/);
    expect(out).toContain(`traced: ${LIB}/libssl.so.3`);
    expect(r.stderr).toMatch(/aim: 4 image\(s\) use files this update changes/);
    console.log(`$ aim impact debs/\n${out}`);
  });
});

describe('aim impact at package level: OSV advisories, a Packages index, PACKAGE=VERSION', () => {
  it('OSV advisories since a date give the same verdicts by package: openssl kept and used, perl not in the slim image, base-files kept but not used', async () => {
    const r = report(await impact('--advisories', OSV, '--since', '2026-01-01'));
    expect(r.update.advisories.map((a) => a.id).sort()).toEqual(['AIM-TEST-2026-0001', 'AIM-TEST-2026-0002', 'AIM-TEST-2026-0003', 'AIM-TEST-2026-0004']);
    expect(r.update.notes.join('\n')).toMatch(/1 advisory\(ies\) modified and published before 2026-01-01/);
    const nginx = verdictOf(r, 'slim/nginx:1');
    const byAdvisory = (id: string) => nginx.packages.filter((p) => p.advisory === id);
    expect(byAdvisory('AIM-TEST-2026-0001').map((p) => [p.binary, p.verdict])).toEqual([['libssl3', 'kept-and-used']]);
    expect(new Set(byAdvisory('AIM-TEST-2026-0002').map((p) => p.verdict))).toEqual(new Set(['not-in-slim']));
    expect(byAdvisory('AIM-TEST-2026-0002').map((p) => p.binary)).toContain('perl-base');
    const base = byAdvisory('AIM-TEST-2026-0003');
    expect(base.map((p) => [p.binary, p.verdict])).toEqual([['base-files', 'kept-not-used']]);
    expect(base[0]!.kept).toContain('/etc/host.conf');
    // zlib's fix is older than what is installed; glibc's advisory is from 2019
    expect(nginx.packages.filter((p) => p.advisory === 'AIM-TEST-2026-0004' || p.source === 'glibc')).toEqual([]);
    // every file of the package counts, and the report says so
    const change = r.changes.find((c) => c.key === byAdvisory('AIM-TEST-2026-0001')[0]!.change)!;
    expect(change).toMatchObject({ basis: 'package', fixed: '3.0.99-1~deb12u1' });
    expect(change.files.map((f) => f.change)).toEqual(change.files.map(() => 'package'));
    expect(change.files.map((f) => f.path)).toEqual(expect.arrayContaining([`${LIB}/libssl.so.3`, `${LIB}/ossl-modules/legacy.so`]));
  });

  it('one OSV file alone', async () => {
    const r = report(await impact(join(OSV, 'AIM-TEST-2026-0003.json')));
    expect(r.update).toMatchObject({ kind: 'osv', advisories: [expect.objectContaining({ id: 'AIM-TEST-2026-0003' })] });
    expect(verdictOf(r, 'slim/nginx:1').verdict).toBe('kept-not-used');
  });

  it('PACKAGE=VERSION and a Packages index name the binary package: the same verdict as the advisory', async () => {
    const spec = report(await impact(`libssl3=${debs.ssl.version}`));
    expect(verdictOf(spec, 'slim/nginx:1')).toMatchObject({ verdict: 'kept-and-used', packages: [expect.objectContaining({ changed: 9 })] });
    const index = join(tmp.dir, 'Packages');
    await writeFile(index, `Package: libssl3\nSource: openssl\nVersion: ${debs.ssl.version}\nArchitecture: amd64\nFilename: pool/main/o/openssl/libssl3.deb\n\nPackage: not-installed-anywhere\nVersion: 1.0\nArchitecture: all\n`);
    const viaIndex = report(await impact(index));
    expect(viaIndex.update).toMatchObject({ kind: 'packages-index', targets: 2 });
    expect(imageFindings(viaIndex).map((i) => [i.tags, i.verdict])).toEqual(imageFindings(spec).map((i) => [i.tags, i.verdict]));
  });

  it('errors: a broken advisory, a missing file, --since without --advisories', async () => {
    const bad = join(tmp.dir, 'bad.json');
    await writeFile(bad, '{"id": "X", "modified": "not a time"}');
    const b = await impact(bad);
    expect(b.exitCode).toBe(4);
    expect(b.json).toMatchObject({ error: { code: 'E_BAD_OSV', message: expect.stringMatching(/modified: an RFC 3339 time/) } });
    expect(await impact(join(tmp.dir, 'nope.deb'))).toMatchObject({ exitCode: 3, json: { error: { code: 'E_NOT_FOUND' } } });
    expect(await impact(debs.ssl.path, '--since', '2026-01-01')).toMatchObject({ exitCode: 2, json: { error: { code: 'E_CONFIG' } } });
  });
});
