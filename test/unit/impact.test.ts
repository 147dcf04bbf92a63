/**
 * Impact analysis on a small Debian-like tree that goes through the real import (dpkg database,
 * merged /usr), a profile and a real slim, so the index is filled by the same hooks as in use:
 * verdicts for package-level and content-level updates, releases and architectures, removal,
 * and the backfill of a repository whose index is empty.
 */
import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DebFile } from '../../src/core/debian/deb-file.js';
import { importImage } from '../../src/core/import/import-image.js';
import { changedFiles, computeImpact, imageFindings, type ImpactReport } from '../../src/core/lifecycle/impact.js';
import { ensureImpactIndex, indexProfile } from '../../src/core/lifecycle/impact-indexer.js';
import { parsePackageSpec, type Update, type UpdateTarget } from '../../src/core/lifecycle/update.js';
import { parseOsv } from '../../src/core/lifecycle/osv.js';
import { addAdvisories } from '../../src/core/lifecycle/update.js';
import type { PathEvidence } from '../../src/core/profile/strace-parser.js';
import { fsckRepository, gcRepository } from '../../src/core/repository/maintenance.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import type { ProfileRecord } from '../../src/core/repository/types.js';
import { slimImage } from '../../src/core/slim/compose.js';
import { RecordingReporter, silentReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

const sha256 = (b: string) => createHash('sha256').update(b).digest('hex');
const LIB = '/usr/lib/x86_64-linux-gnu';

/** Files of the tree: path → content (a string) or symlink target ({ link }). */
const TREE: Record<string, string | { link: string }> = {
  '/lib': { link: 'usr/lib' },
  '/etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
  '/etc/host.conf': 'multi on\n',
  '/etc/app.conf': 'port = 80\n',
  '/usr/bin/dash': 'pretend dash\n',
  '/usr/sbin/app': '#!/usr/bin/dash\necho app\n',
  [`${LIB}/libssl.so.3`]: 'libssl 3.0.11\n',
  [`${LIB}/libcrypto.so.3`]: 'libcrypto 3.0.11\n',
  [`${LIB}/engines-3/afalg.so`]: 'afalg engine\n',
  '/usr/share/doc/libssl3/changelog.gz': 'changes\n',
  [`${LIB}/libc.so.6`]: 'glibc 2.36\n',
  [`${LIB}/libnss_dns.so.2`]: 'nss dns\n',
  [`${LIB}/libz.so.1.2.13`]: 'zlib\n',
  [`${LIB}/libz.so.1`]: { link: 'libz.so.1.2.13' },
};

/** Packages: name, version, source (with version when it differs), and the paths dpkg lists. */
const PACKAGES: { name: string; version: string; source?: string; arch?: string; files: string[] }[] = [
  { name: 'base-files', version: '12.4+deb12u5', files: ['/etc/host.conf', '/etc/os-release'] },
  { name: 'dash', version: '0.5.12-2', files: ['/bin', '/usr/bin/dash'] },
  { name: 'app', version: '1.0-1', files: ['/usr/sbin/app', '/etc/app.conf'] },
  { name: 'libssl3', version: '3.0.11-1~deb12u2', source: 'openssl', files: [`${LIB}/libssl.so.3`, `${LIB}/libcrypto.so.3`, `${LIB}/engines-3/afalg.so`, '/usr/share/doc/libssl3/changelog.gz'] },
  // libc6 lists its files through /lib, as bookworm's does: the index must find them at /usr/lib
  { name: 'libc6', version: '2.36-9+deb12u4', source: 'glibc', files: ['/lib/x86_64-linux-gnu/libc.so.6', '/lib/x86_64-linux-gnu/libnss_dns.so.2'] },
  { name: 'zlib1g', version: '1:1.2.13.dfsg-1', source: 'zlib', files: [`${LIB}/libz.so.1`, `${LIB}/libz.so.1.2.13`] },
];

async function writeTree(root: string, tree: Record<string, string | { link: string }>, packages = PACKAGES): Promise<void> {
  for (const [path, content] of Object.entries(tree)) {
    const p = join(root, path);
    await mkdir(dirname(p), { recursive: true });
    if (typeof content === 'string') await writeFile(p, content, { mode: path.includes('/sbin/') ? 0o755 : 0o644 });
    else await symlink(content.link, p);
  }
  const status = packages
    .map((p) => [`Package: ${p.name}`, 'Status: install ok installed', `Architecture: ${p.arch ?? 'amd64'}`, ...(p.source ? [`Source: ${p.source}`] : []), `Version: ${p.version}`, 'Description: test'].join('\n'))
    .join('\n\n');
  await mkdir(join(root, 'var/lib/dpkg/info'), { recursive: true });
  await writeFile(join(root, 'var/lib/dpkg/status'), status + '\n');
  for (const p of packages) await writeFile(join(root, 'var/lib/dpkg/info', `${p.name}.list`), ['/.', ...p.files].join('\n') + '\n');
}

const used = (path: string, exec = false): PathEvidence => ({ path, syscalls: [exec ? 'execve' : 'openat'], ok: true, errors: [], exec, wrote: false, firstPid: 1, firstSeen: 0 });

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: Repository;
let goldId: string;
let slimId: string;

beforeAll(async () => {
  tmp = await tempDir('aim-impact-');
  const root = join(tmp.dir, 'gold');
  await writeTree(root, TREE);
  await initRepository(join(tmp.dir, 'repo'));
  repo = await openRepository(join(tmp.dir, 'repo'));
  goldId = (await importImage(repo, { source: root, tags: ['gold/app:1'] }, silentReporter)).id;
  const now = new Date().toISOString();
  // the workload ran the app (a dash script), read its config and opened libssl and libc through /lib
  const profile: ProfileRecord = {
    name: 'app',
    imageId: goldId,
    createdAt: now,
    updatedAt: now,
    runs: [],
    paths: [used('/usr/sbin/app', true), used('/etc/app.conf'), used('/lib/x86_64-linux-gnu/libssl.so.3'), used('/lib/x86_64-linux-gnu/libc.so.6'), used(`${LIB}/libz.so.1`)],
  };
  await repo.catalog.putProfile(profile);
  await indexProfile(repo, profile);
  // the slim image also keeps what the workload never opened: libcrypto, nss_dns, host.conf
  slimId = (
    await slimImage(
      repo,
      { goldId, profile: 'app', tags: ['slim/app:1'], rules: { keepGlobs: [`${LIB}/libcrypto.so.3`, `${LIB}/libnss_dns.so.2`, '/etc/host.conf'] } },
      silentReporter,
    )
  ).id;
}, 120_000);
afterAll(async () => {
  await repo?.close();
  await tmp?.cleanup();
});

/** impact_groups as the triggers keep it, or ('counted') as the images give it. */
function groupCounts(how: 'kept' | 'counted' = 'kept'): { kind: string; release: string | null; states: number; kept: number | null; traced: number | null; images: number }[] {
  const db = new Database(join(repo.root, 'catalog.db'), { readonly: true });
  try {
    const group = 'kind, release, states, kept, traced';
    const sql =
      how === 'kept'
        ? `SELECT ${group}, images FROM impact_groups ORDER BY ${group}`
        : `SELECT ${group}, count(*) AS images FROM impact_images GROUP BY ${group} ORDER BY ${group}`;
    return db.prepare(sql).all() as ReturnType<typeof groupCounts>;
  } finally {
    db.close();
  }
}

const update = (...targets: UpdateTarget[]): Update => ({ kind: 'mixed', input: 'test', targets, advisories: [], notes: [] });
const image = (r: ImpactReport, tag: string) => imageFindings(r).find((i) => i.tags.includes(tag))!;

/** The installed files of a package as a .deb would carry them, some changed, added or left out. */
function debFiles(pkg: string, edits: { change?: string[]; add?: string[]; drop?: string[] } = {}): DebFile[] {
  const p = PACKAGES.find((x) => x.name === pkg)!;
  const canonical = (path: string) => path.replace(/^\/lib\//, '/usr/lib/');
  const files: DebFile[] = p.files
    .filter((f) => !edits.drop?.includes(f) && typeof TREE[canonical(f)] !== 'undefined')
    .map((path) => {
      const c = TREE[canonical(path)]!;
      if (typeof c !== 'string') return { path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: c.link };
      const text = edits.change?.includes(path) ? `${c} (patched)` : c;
      return { path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: { hash: sha256(text), size: text.length } };
    });
  for (const path of edits.add ?? []) files.push({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: { hash: sha256(path), size: 1 } });
  return files;
}
const deb = (pkg: string, version: string, edits?: Parameters<typeof debFiles>[1], arch = 'amd64'): UpdateTarget => ({ by: 'binary', name: pkg, arch, version, files: debFiles(pkg, edits), origin: `${pkg}.deb` });

describe('impact verdicts from the index', () => {
  it('package level (no contents): every file counts; the slim image keeps and its profile uses libssl', async () => {
    const r = await computeImpact(repo.catalog.impact, update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1')));
    const slim = image(r, 'slim/app:1');
    expect(slim).toMatchObject({ kind: 'slim', gold: goldId, profile: 'app', verdict: 'kept-and-used', inUse: true });
    expect(slim.packages).toEqual([
      expect.objectContaining({ binary: 'libssl3', source: 'openssl', installed: '3.0.11-1~deb12u2', fixed: '3.0.15-1~deb12u1', changed: 4, kept: [`${LIB}/libcrypto.so.3`, `${LIB}/libssl.so.3`], traced: [`${LIB}/libssl.so.3`] }),
    ]);
    const gold = image(r, 'gold/app:1');
    expect(gold).toMatchObject({ kind: 'gold', verdict: 'present', inUse: true });
    expect(gold.packages[0]).toMatchObject({ traced: [`${LIB}/libssl.so.3`] });
    expect(gold.packages[0]).not.toHaveProperty('kept');
    const change = r.changes.find((c) => c.key === gold.packages[0]!.change)!;
    expect(change).toMatchObject({ basis: 'package' });
    expect(change.files.map((f) => f.path)).toEqual([`${LIB}/engines-3/afalg.so`, `${LIB}/libcrypto.so.3`, `${LIB}/libssl.so.3`, '/usr/share/doc/libssl3/changelog.gz']);
    expect(r.summary).toMatchObject({ images: 2, inUse: 2, 'kept-and-used': 1, present: 1 });
  });

  it('by content: a changed file the slim image dropped is present but not in the slim image', async () => {
    const r = await computeImpact(repo.catalog.impact, update(deb('libssl3', '3.0.11-1~deb12u3', { change: [`${LIB}/engines-3/afalg.so`] })));
    expect(image(r, 'slim/app:1')).toMatchObject({ verdict: 'not-in-slim', inUse: false });
    expect(image(r, 'gold/app:1')).toMatchObject({ verdict: 'present', inUse: false });
    expect(r.changes).toHaveLength(1);
    expect(r.changes[0]).toMatchObject({ basis: 'content', files: [{ path: `${LIB}/engines-3/afalg.so`, change: 'modified' }] });
  });

  it('by content, through /lib: a changed file kept but never opened is kept but not used', async () => {
    const r = await computeImpact(repo.catalog.impact, update(deb('libc6', '2.36-9+deb12u5', { change: ['/lib/x86_64-linux-gnu/libnss_dns.so.2'] })));
    expect(image(r, 'slim/app:1')).toMatchObject({ verdict: 'kept-not-used', inUse: false });
    expect(image(r, 'slim/app:1').packages[0]).toMatchObject({ kept: [`${LIB}/libnss_dns.so.2`], traced: [] });
    expect(r.changes[0]!.files).toEqual([{ path: `${LIB}/libnss_dns.so.2`, change: 'modified' }]);
  });

  it('by content: the changed file the profile traced makes it kept and used; added and removed files count', async () => {
    const r = await computeImpact(repo.catalog.impact, update(deb('libssl3', '3.0.11-1~deb12u3', { change: [`${LIB}/libssl.so.3`], add: [`${LIB}/engines-3/new.so`], drop: ['/usr/share/doc/libssl3/changelog.gz'] })));
    expect(image(r, 'slim/app:1')).toMatchObject({ verdict: 'kept-and-used', packages: [expect.objectContaining({ kept: [`${LIB}/libssl.so.3`], traced: [`${LIB}/libssl.so.3`] })] });
    expect(r.changes[0]!.files).toEqual([
      { path: `${LIB}/engines-3/new.so`, change: 'added' },
      { path: `${LIB}/libssl.so.3`, change: 'modified' },
      { path: '/usr/share/doc/libssl3/changelog.gz', change: 'removed' },
    ]);
  });

  it('not affected: same content at a higher version, an older version, another architecture, another release', async () => {
    for (const t of [
      deb('libssl3', '3.0.11-1~deb12u3'), // identical files
      deb('libssl3', '3.0.11-1~deb12u1', { change: [`${LIB}/libssl.so.3`] }), // older than installed
      deb('libssl3', '3.0.11-1~deb12u3', { change: [`${LIB}/libssl.so.3`] }, 'arm64'),
      parsePackageSpec('libssl3:arm64=3.0.15-1'),
      parsePackageSpec('zlib1g=1:1.2.13.dfsg-1'), // equal
    ]) {
      const r = await computeImpact(repo.catalog.impact, update(t));
      expect(r.summary, `${t.origin} ${t.version}`).toMatchObject({ 'not-affected': 2, inUse: 0 });
    }
    const same = await computeImpact(repo.catalog.impact, update(deb('libssl3', '3.0.11-1~deb12u3')));
    expect(same.update.notes.join('\n')).toMatch(/exactly the files of the new package/);
  });

  it('OSV: the release in the ecosystem must match the image (Debian:11 does not touch a Debian 12 image)', async () => {
    const osv = (eco: string) =>
      parseOsv(JSON.stringify({ id: `T-${eco}`, modified: '2026-01-01T00:00:00Z', affected: [{ package: { ecosystem: eco, name: 'zlib' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:1.3-1' }] }] }] }), 'x.json');
    for (const [eco, verdict] of [['Debian:11', 'not-affected'], ['Debian:12', 'kept-and-used'], ['Debian', 'kept-and-used']] as const) {
      const u = update();
      addAdvisories(u, osv(eco));
      const r = await computeImpact(repo.catalog.impact, u);
      expect(image(r, 'slim/app:1').verdict, eco).toBe(verdict);
      if (verdict !== 'not-affected') expect(image(r, 'slim/app:1').packages[0]).toMatchObject({ advisory: `T-${eco}`, fixed: '1:1.3-1', traced: [`${LIB}/libz.so.1`, `${LIB}/libz.so.1.2.13`] });
    }
  });

  it('changedFiles compares by listed and canonical path, symlinks by target', () => {
    const installed: [string, string?, string?][] = [
      ['/usr/lib/a.so.1', 'link:a.so.1.0', '/lib/a.so.1'],
      ['/usr/lib/a.so.1.0', 'h1', '/lib/a.so.1.0'],
    ];
    const files: DebFile[] = [
      { path: '/lib/a.so.1', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: 'a.so.1.1' },
      { path: '/usr/lib/a.so.1.0', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, content: { hash: 'h1', size: 1 } },
    ];
    expect(changedFiles(files, installed)).toEqual([{ path: '/usr/lib/a.so.1', change: 'modified' }]);
  });
});

describe('the index follows the repository', () => {
  it('is filled at write time: nothing pending after import, profile and slim', async () => {
    expect(await repo.catalog.impact.pending()).toEqual({ images: [], profiles: [] });
  });

  it('a re-run profile is re-indexed on first use; a removed image leaves no rows', async () => {
    const profile = (await repo.catalog.getProfile('app'))!;
    await repo.catalog.putProfile({ ...profile, updatedAt: new Date(Date.now() + 1000).toISOString(), paths: [...profile.paths, used(`${LIB}/libcrypto.so.3`)] });
    expect((await repo.catalog.impact.pending()).profiles).toEqual(['app']);
    const rec = new RecordingReporter();
    expect(await ensureImpactIndex(repo, rec)).toEqual({ images: 0, profiles: 1 });
    expect(groupCounts()).toEqual(groupCounts('counted'));
    const r = await computeImpact(repo.catalog.impact, update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1')));
    expect(image(r, 'slim/app:1').packages[0]!.traced).toEqual([`${LIB}/libcrypto.so.3`, `${LIB}/libssl.so.3`]);
  });

  it('an older state of a profile is not stored over the current one (a run that lost a race)', async () => {
    const spec = update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1'));
    const before = await computeImpact(repo.catalog.impact, spec);
    const profile = (await repo.catalog.getProfile('app'))!;
    await repo.catalog.impact.putProfile('app', goldId, new Date(Date.parse(profile.updatedAt) - 1000).toISOString(), new Map());
    expect(await repo.catalog.impact.pending()).toEqual({ images: [], profiles: [] });
    expect(await computeImpact(repo.catalog.impact, spec)).toEqual(before);
    expect(image(before, 'slim/app:1').packages[0]!.traced).not.toEqual([]);
  });

  it('backfills a repository whose index is empty (an older aim), with a progress message, to the same verdicts', async () => {
    const before = await computeImpact(repo.catalog.impact, update(deb('libc6', '2.36-9+deb12u5', { change: ['/lib/x86_64-linux-gnu/libnss_dns.so.2'] })));
    const db = new Database(join(repo.root, 'catalog.db'));
    db.exec('DELETE FROM impact_profiles; DELETE FROM impact_images; DELETE FROM impact_members; DELETE FROM impact_states; DELETE FROM impact_sets;');
    db.close();
    expect((await repo.catalog.impact.pending()).images.map((i) => [i.id, i.slim])).toEqual([
      [goldId, false],
      [slimId, true],
    ]);
    const rec = new RecordingReporter();
    expect(await ensureImpactIndex(repo, rec)).toEqual({ images: 2, profiles: 1 });
    expect(rec.events.find((e) => e.type === 'stage' && e.status === 'start')).toMatchObject({ stage: 'impact.index', detail: expect.stringMatching(/indexing 2 image\(s\) and 1 profile\(s\)/) });
    const after = await computeImpact(repo.catalog.impact, update(deb('libc6', '2.36-9+deb12u5', { change: ['/lib/x86_64-linux-gnu/libnss_dns.so.2'] })));
    expect(after.groups).toEqual(before.groups);
    expect(groupCounts()).toEqual(groupCounts('counted'));
  });

  it('the tags in a report follow tag changes: added (sorted), moved to another image, removed', async () => {
    const tagsOf = async () => {
      const r = await computeImpact(repo.catalog.impact, update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1')));
      return Object.fromEntries(imageFindings(r).map((i) => [i.id === goldId ? 'gold' : 'slim', i.tags]));
    };
    await repo.catalog.setTag('z/extra:1', slimId);
    await repo.catalog.setTag('a/first:1', slimId);
    expect(await tagsOf()).toEqual({ gold: ['gold/app:1'], slim: ['a/first:1', 'slim/app:1', 'z/extra:1'] });
    await repo.catalog.setTag('z/extra:1', goldId);
    expect(await tagsOf()).toEqual({ gold: ['gold/app:1', 'z/extra:1'], slim: ['a/first:1', 'slim/app:1'] });
    await repo.catalog.removeTag('a/first:1');
    await repo.catalog.removeTag('z/extra:1');
    await repo.catalog.removeTag('gold/app:1');
    expect(await tagsOf()).toEqual({ gold: [], slim: ['slim/app:1'] });
    await repo.catalog.setTag('gold/app:1', goldId);
    expect(await tagsOf()).toEqual({ gold: ['gold/app:1'], slim: ['slim/app:1'] });
  });

  it('an index of version 3 (no refs on its rows) is upgraded in place when the catalog opens: nothing to re-index, the same report', async () => {
    const spec = update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1'));
    const before = await computeImpact(repo.catalog.impact, spec);
    await repo.close();
    const db = new Database(join(tmp.dir, 'repo', 'catalog.db'));
    db.exec(`DROP TRIGGER impact_tags_insert; DROP TRIGGER impact_tags_delete; DROP TRIGGER impact_tags_update; DROP TRIGGER impact_profile_changed;
      DROP TRIGGER impact_profile_removed; DROP TRIGGER impact_groups_insert; DROP TRIGGER impact_groups_delete; DROP TRIGGER impact_groups_update;
      DROP TABLE impact_groups; DROP INDEX impact_images_groups; ALTER TABLE impact_images DROP COLUMN ref;
      UPDATE meta SET value = '3' WHERE key = 'impact_schema';`);
    // version 3 kept the row of a profile re-run since (and found it pending by its time)
    const rerun = new Date(Date.now() + 5000).toISOString();
    db.prepare("UPDATE profiles SET updated_at = ?, data = json_set(data, '$.updatedAt', ?) WHERE name = 'app'").run(rerun, rerun);
    db.close();
    repo = await openRepository(join(tmp.dir, 'repo'));
    expect(await repo.catalog.impact.pending()).toEqual({ images: [], profiles: ['app'] });
    expect(await ensureImpactIndex(repo, silentReporter)).toEqual({ images: 0, profiles: 1 });
    expect(await repo.catalog.impact.pending()).toEqual({ images: [], profiles: [] });
    expect(await computeImpact(repo.catalog.impact, spec)).toEqual(before);
    expect(groupCounts()).toEqual(groupCounts('counted'));
    await repo.catalog.setTag('z/extra:1', goldId);
    expect(image(await computeImpact(repo.catalog.impact, spec), 'z/extra:1').id).toBe(goldId);
    await repo.catalog.removeTag('z/extra:1');
  });

  it('the counts of images per group follow every write (re-indexed images and profiles), and a report stays right without them', async () => {
    const spec = update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1'));
    expect(groupCounts()).toEqual(groupCounts('counted'));
    expect(groupCounts().reduce((n, g) => n + g.images, 0)).toBe(2);
    const before = await computeImpact(repo.catalog.impact, spec);
    const db = new Database(join(repo.root, 'catalog.db'));
    db.exec('DELETE FROM impact_groups');
    db.close();
    expect(await computeImpact(repo.catalog.impact, spec)).toEqual(before);
    const rebuilt = new Database(join(repo.root, 'catalog.db'));
    rebuilt.exec('INSERT INTO impact_groups SELECT kind, release, states, kept, traced, count(*) FROM impact_images GROUP BY kind, release, states, kept, traced');
    rebuilt.close();
  });

  it('removing the slim image removes its rows', async () => {
    await repo.catalog.removeImage(slimId);
    expect(groupCounts()).toEqual(groupCounts('counted'));
    const r = await computeImpact(repo.catalog.impact, update(parsePackageSpec('src:openssl=3.0.15-1~deb12u1')));
    expect(imageFindings(r).map((i) => i.id)).toEqual([goldId]);
    const db = new Database(join(repo.root, 'catalog.db'), { readonly: true });
    const n = db.prepare('SELECT count(*) FROM impact_images WHERE image_id = ?').pluck().get(slimId) as number;
    db.close();
    expect(n).toBe(0);
  });
});

describe('impact index rows never outlive their images', () => {
  const TABLES = ['impact_images', 'impact_profiles', 'impact_members', 'impact_states', 'impact_sets'];
  const counts = () => {
    const db = new Database(join(repo.root, 'catalog.db'), { readonly: true });
    try {
      return Object.fromEntries(TABLES.map((t) => [t, db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number]));
    } finally {
      db.close();
    }
  };
  const none = { images: 0, profiles: 0, members: 0, states: 0, sets: 0 };
  /** A second gold image: libssl at another version and content, and a file of its own (new package states and sets). */
  const addVariant = async (tag: string, ssl: string) => {
    const root = join(tmp.dir, tag.replace(/\W/g, '-'));
    const pkgs = PACKAGES.map((p) => (p.name === 'libssl3' ? { ...p, version: `${ssl}-1~deb12u1` } : p));
    await writeTree(root, { ...TREE, [`${LIB}/libssl.so.3`]: `libssl ${ssl}\n`, '/etc/variant': `${tag}\n` }, pkgs);
    return (await importImage(repo, { source: root, tags: [tag] }, silentReporter)).id;
  };
  const verdicts = async () => (await computeImpact(repo.catalog.impact, update(deb('libssl3', '3.0.16-1~deb12u1', { change: [`${LIB}/libssl.so.3`] })))).groups;
  /** The verdicts of an index built afresh from the catalog: what the pruned index must still answer. */
  const rebuilt = async () => {
    const db = new Database(join(repo.root, 'catalog.db'));
    db.exec('DELETE FROM impact_profiles; DELETE FROM impact_images; DELETE FROM impact_members; DELETE FROM impact_states; DELETE FROM impact_sets;');
    db.close();
    await ensureImpactIndex(repo, silentReporter);
    return verdicts();
  };

  it('removing an image removes the rows only it reached, and none another image needs', async () => {
    // a slim image again, so that kept maps (and the path sets only they name) are live
    await slimImage(repo, { goldId, profile: 'app', tags: ['slim/app:2'], rules: { keepGlobs: [`${LIB}/libcrypto.so.3`] } }, silentReporter);
    // writes that replace an index row (a slim image is indexed, then its slim row replaces that) leave garbage for gc
    await repo.catalog.impact.prune();
    const before = counts();
    const answer = await verdicts();
    expect(answer.some((g) => g.verdict === 'kept-and-used')).toBe(true);
    const id = await addVariant('gold/app:9', '3.0.13');
    const grown = counts();
    expect(grown.impact_images).toBe(before.impact_images! + 1);
    expect(grown.impact_states).toBeGreaterThan(before.impact_states!);
    expect(grown.impact_sets).toBeGreaterThan(before.impact_sets!);
    await repo.catalog.removeImage(id);
    expect(counts()).toEqual(before);
    expect(await repo.catalog.impact.stale()).toEqual(none);
    // what is left answers as before, and as an index built afresh does: no set a live image reaches was taken
    expect(await verdicts()).toEqual(answer);
    expect(await repo.catalog.impact.pending()).toEqual({ images: [], profiles: [] });
    expect(await rebuilt()).toEqual(answer);
    expect(groupCounts()).toEqual(groupCounts('counted'));
  });

  it('rows an older aim left behind (an image deleted without its index rows) are reported by fsck and removed by gc', async () => {
    const answer = await verdicts();
    const id = await addVariant('gold/app:10', '3.0.14');
    // as a catalog written without foreign keys would be: the image goes, its index rows stay
    const db = new Database(join(repo.root, 'catalog.db'));
    db.pragma('foreign_keys = OFF');
    db.prepare('DELETE FROM tags WHERE image_id = ?').run(id);
    db.prepare('DELETE FROM entries WHERE image_id = ?').run(id);
    db.prepare('DELETE FROM images WHERE id = ?').run(id);
    db.close();
    const stale = await repo.catalog.impact.stale();
    expect(stale).toMatchObject({ images: 1, profiles: 0 });
    expect(stale.states).toBeGreaterThan(0);
    expect(stale.sets).toBeGreaterThan(0);
    const fsck = await fsckRepository(repo, silentReporter, { rehash: false });
    expect(fsck).toMatchObject({ ok: true, staleImpactRows: stale });
    const dry = await gcRepository(repo, silentReporter, { dryRun: true });
    expect(dry.impactRows).toEqual(stale);
    expect(await repo.catalog.impact.stale()).toEqual(stale);
    const gc = await gcRepository(repo, silentReporter);
    expect(gc.impactRows).toEqual(stale);
    expect(await repo.catalog.impact.stale()).toEqual(none);
    expect((await fsckRepository(repo, silentReporter, { rehash: false })).staleImpactRows).toEqual(none);
    expect(await verdicts()).toEqual(answer);
    expect(await rebuilt()).toEqual(answer);
    expect(groupCounts()).toEqual(groupCounts('counted'));
  });
});

describe('the image list of the index', () => {
  it('names every image with its tags, gold and profile, whatever the profile name holds; groups in index order', async () => {
    const t = await tempDir('aim-impact-list-');
    await initRepository(join(t.dir, 'repo'));
    const r = await openRepository(join(t.dir, 'repo'));
    try {
      const record = (id: string) => ({ id, createdAt: new Date().toISOString(), source: 'test', sourceKind: 'test', entryCount: 0, fileCount: 0, totalSize: 0 });
      const [gold, slim, bare] = ['gold', 'slim', 'bare'].map(sha256);
      const state = { package: 'zlib1g', arch: 'amd64', version: '1', source: 'zlib', sourceVersion: '1', files: [['/usr/lib/libz.so.1', sha256('z')]] as [string, string][] };
      await r.catalog.addImage(record(gold!), [], undefined, ['g/z:2', 'g/a:1']);
      await r.catalog.impact.putImage(gold!, { kind: 'gold', states: [state] });
      await r.catalog.addImage(record(slim!), [], undefined, []);
      await r.catalog.impact.putSlim(slim!, { goldId: gold!, profile: 'odd\tname\nwith tabs', kept: new Map([['zlib1g', ['/usr/lib/libz.so.1']]]) });
      await r.catalog.addImage(record(bare!), [], undefined, ['bare:1']);
      await r.catalog.impact.putImage(bare!, { kind: 'other', states: [] });
      const groups = await r.catalog.impact.groups();
      expect(groups.map((g) => [g.kind, g.images])).toEqual([
        ['gold', [{ id: gold, tags: ['g/a:1', 'g/z:2'] }]],
        ['other', [{ id: bare, tags: ['bare:1'] }]],
        ['slim', [{ id: slim, tags: [], gold, profile: 'odd\tname\nwith tabs' }]],
      ]);
    } finally {
      await r.close();
      await t.cleanup();
    }
  });
});
