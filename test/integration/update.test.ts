/**
 * aim update on a real Debian image: the nginx gold image, profiled and slimmed once, then updated
 * step by step with packages rebuilt by dpkg-deb from its own installed libssl3, libc6 and zlib1g —
 * a changed libssl file the slim image keeps and uses, a changed file it dropped, a changed file
 * it keeps but never opens (given through a Packages index in an archive layout), a postinst that
 * changes a file. Each new gold and slim image holds the new content (compared with hashes made
 * here from the gold tree), aim impact gives old and new versions their verdicts, the dpkg
 * database matches what dpkg itself writes, and aim image history shows the lineage.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageFindings, type ImpactReport } from '../../src/core/lifecycle/impact.js';
import type { ImageHistory } from '../../src/core/lifecycle/history.js';
import type { UpdateResult } from '../../src/core/lifecycle/update-image.js';
import { openRepository } from '../../src/core/repository/repository.js';
import { aim, runJs } from '../helpers/cli.js';
import { patchedDeb, type PatchedDeb } from '../helpers/debs-from-gold.js';
import { prepareSlimNginxOnly } from '../boot/helpers/slim-nginx.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';

const LIB = '/usr/lib/x86_64-linux-gnu';
const MARK = '\n# changed by aim tests\n';
const long = 900_000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let root: string;
const debs: Record<'ssl' | 'dropped' | 'unused' | 'scripted' | 'failing', PatchedDeb> = {} as never;
const run = <T = UpdateResult>(args: string[], env?: Record<string, string>) => aim<T>([...args, '--repo', repo], env ? { env } : {});
const results: Record<string, UpdateResult> = {};

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** The hash of a gold file with the helper's change appended: what the patched package ships. */
const patchedHash = async (path: string) => sha256(Buffer.concat([await readFile(join(root, path)), Buffer.from(MARK)]));
const originalHash = async (path: string) => sha256(await readFile(join(root, path)));

/** Entries, packages and file contents of images, read from the catalog. */
async function inRepo<T>(fn: (r: Awaited<ReturnType<typeof openRepository>>) => Promise<T>): Promise<T> {
  const r = await openRepository(repo);
  try {
    return await fn(r);
  } finally {
    await r.close();
  }
}
const entryOf = (ref: string, path: string) => inRepo(async (r) => (await r.catalog.entries((await r.catalog.resolve(ref))!)).find((e) => e.path === path));
const fileText = (ref: string, path: string) => inRepo(async (r) => (await r.blobs.read((await r.catalog.entries((await r.catalog.resolve(ref))!)).find((e) => e.path === path)!.blob!)).toString('utf8'));
const versionIn = (ref: string, pkg: string) => inRepo(async (r) => (await r.catalog.packages((await r.catalog.resolve(ref))!)).find((p) => p.name === pkg)?.version);

/** aim impact's verdict per tag (exit 13 when an image uses a changed file). */
async function verdicts(deb: string): Promise<Record<string, string>> {
  const res = await run<ImpactReport & { result?: ImpactReport }>(['impact', deb]);
  expect([0, 13], res.stderr).toContain(res.exitCode);
  const report = res.exitCode === 13 ? res.json.result! : res.json;
  return Object.fromEntries(imageFindings(report).flatMap((i) => i.tags.map((t) => [t, i.verdict] as const)));
}

function updated(res: { exitCode: number; json: UpdateResult; stderr: string }, key: string): UpdateResult {
  expect(res.exitCode, res.stderr).toBe(0);
  results[key] = res.json;
  return res.json;
}

beforeAll(async () => {
  tmp = await tempDir('aim-update-it-');
  repo = join(tmp.dir, 'repo');
  // gold/nginx:1, its profile web and slim/nginx:1
  await prepareSlimNginxOnly(repo);
  const tar = await goldTar('nginx');
  root = join(tmp.dir, 'root');
  await mkdir(root);
  await execa('tar', ['-xpf', tar, '-C', root, '--numeric-owner']);
  const out = join(tmp.dir, 'debs');
  await mkdir(out);
  await mkdir(join(tmp.dir, 'failing'));
  debs.ssl = await patchedDeb(root, 'libssl3', { change: [`${LIB}/libssl.so.3`], suffix: '+aimtest1', out });
  debs.dropped = await patchedDeb(root, 'libssl3', { change: [`${LIB}/ossl-modules/legacy.so`], suffix: '+aimtest2', out });
  debs.unused = await patchedDeb(root, 'libc6', { change: ['/lib/x86_64-linux-gnu/libnss_dns.so.2'], suffix: '+aimtest1', out });
  const postinst = '#!/bin/sh\nset -e\nif [ "$1" = configure ]; then echo "patched by a postinst" >> /etc/issue; fi\n';
  debs.scripted = await patchedDeb(root, 'zlib1g', { change: [], suffix: '+aimtest1', out, scripts: { postinst } });
  debs.failing = await patchedDeb(root, 'zlib1g', { change: [], suffix: '+aimtest2', out: join(tmp.dir, 'failing'), scripts: { postinst: '#!/bin/sh\necho "postinst fails on purpose" >&2\nexit 1\n' } });
}, long);
afterAll(async () => tmp?.cleanup());

describe('aim update with patched Debian packages', () => {
  it('a changed libssl file: new gold and slim versions hold it, dpkg records it as dpkg does, impact judges old and new', async () => {
    // a build of the slim image, recorded: the update builds the same of the new version
    const built = await run(['build', 'slim/nginx:1', '--format', 'tar', '--out', join(tmp.dir, 'build-1')]);
    expect(built.exitCode, built.stderr).toBe(0);
    const r = updated(await run(['update', 'gold/nginx:1', '--with', debs.ssl.path, '--out', join(tmp.dir, 'builds')]), 'ssl');
    expect(r.packages).toEqual([{ name: 'libssl3', arch: 'amd64', from: debs.ssl.installed, to: debs.ssl.version, changed: [`${LIB}/libssl.so.3`], added: [], removed: [], keptConffiles: [] }]);
    expect(r).toMatchObject({ parent: { ref: 'gold/nginx:1' }, gold: { ref: 'gold/nginx:2', created: true }, slim: { ref: 'slim/nginx:2', parent: { ref: 'slim/nginx:1' }, profile: 'web' } });
    // the installed version activates ldconfig on its way out: dpkg ran in the sandbox, and it changed nothing else
    expect(r.scripts).toEqual([expect.objectContaining({ package: 'libssl3', name: 'triggers', from: 'installed', runs: 'activates ldconfig' })]);
    expect(r.scriptRun).toMatchObject({ accepted: false, changes: [] });
    const want = await patchedHash(`${LIB}/libssl.so.3`);
    for (const ref of ['gold/nginx:2', 'slim/nginx:2']) expect((await entryOf(ref, `${LIB}/libssl.so.3`))?.blob, ref).toBe(want);
    expect((await entryOf('gold/nginx:1', `${LIB}/libssl.so.3`))?.blob).toBe(await originalHash(`${LIB}/libssl.so.3`));
    expect(await versionIn('gold/nginx:2', 'libssl3')).toBe(debs.ssl.version);
    expect(r.artifacts).toEqual([expect.objectContaining({ of: 'slim', imageId: r.slim!.id, format: 'tar' })]);
    const tarball = r.artifacts[0]!.artifacts[0]!.path;
    const member = await execa('tar', ['-xOf', tarball, `.${LIB}/libssl.so.3`], { encoding: 'buffer', stripFinalNewline: false });
    expect(sha256(Buffer.from(member.stdout))).toBe(want);

    // what dpkg itself writes for the same package on a copy of the gold tree
    const copy = join(tmp.dir, 'dpkg-root');
    await execa('cp', ['-a', root, copy]);
    await execa('dpkg', ['--root', copy, '--no-triggers', '-i', debs.ssl.path]);
    for (const f of ['libssl3:amd64.list', 'libssl3:amd64.md5sums']) expect(await fileText('gold/nginx:2', `/var/lib/dpkg/info/${f}`), f).toBe(await readFile(join(copy, 'var/lib/dpkg/info', f), 'utf8'));
    const paragraph = (status: string) => status.split('\n\n').find((p) => p.startsWith('Package: libssl3\n'));
    expect(paragraph(await fileText('gold/nginx:2', '/var/lib/dpkg/status'))).toBe(paragraph(await readFile(join(copy, 'var/lib/dpkg/status'), 'utf8')));
    await execa('rm', ['-rf', copy]);

    expect(await verdicts(debs.ssl.path)).toMatchObject({ 'slim/nginx:1': 'kept-and-used', 'gold/nginx:1': 'present', 'slim/nginx:2': 'not-affected', 'gold/nginx:2': 'not-affected' });
  }, long);

  it('a changed file the slim image dropped: the new gold has it, the new slim image still leaves it out', async () => {
    const r = updated(await run(['update', 'gold/nginx:2', '--with', join(tmp.dir, 'debs', `libssl3_${debs.dropped.version}_amd64.deb`)]), 'dropped');
    // from the +aimtest1 build: libssl.so.3 goes back to the original, legacy.so changes
    expect(r.packages[0]!.changed).toEqual([`${LIB}/libssl.so.3`, `${LIB}/ossl-modules/legacy.so`]);
    expect(r).toMatchObject({ gold: { ref: 'gold/nginx:3' }, slim: { ref: 'slim/nginx:3', parent: { ref: 'slim/nginx:2' } } });
    expect((await entryOf('gold/nginx:3', `${LIB}/ossl-modules/legacy.so`))?.blob).toBe(await patchedHash(`${LIB}/ossl-modules/legacy.so`));
    expect(await entryOf('slim/nginx:3', `${LIB}/ossl-modules/legacy.so`)).toBeUndefined();
    expect((await entryOf('slim/nginx:3', `${LIB}/libssl.so.3`))?.blob).toBe(await originalHash(`${LIB}/libssl.so.3`));
    // the previous slim version was built as a tar: without --out the update says so and builds nothing
    expect(r.artifacts).toEqual([]);
    expect(r.notes.join('\n')).toMatch(/previous version was built as slim tar: give an output directory/);
    // against the first version it changes legacy.so only, which the slim image dropped; against the
    // second it also takes libssl.so.3 back to its original content, which that slim image uses
    expect(await verdicts(debs.dropped.path)).toMatchObject({
      'slim/nginx:1': 'not-in-slim',
      'gold/nginx:1': 'present',
      'slim/nginx:2': 'kept-and-used',
      'slim/nginx:3': 'not-affected',
      'gold/nginx:3': 'not-affected',
    });
  }, long);

  it('a changed file kept but never opened, from a Packages index in an archive layout: the slim image keeps the new content', async () => {
    const mirror = join(tmp.dir, 'mirror');
    const pool = join(mirror, 'pool/main/g/glibc');
    const dists = join(mirror, 'dists/bookworm/main/binary-amd64');
    await mkdir(pool, { recursive: true });
    await mkdir(dists, { recursive: true });
    const name = debs.unused.path.slice(debs.unused.path.lastIndexOf('/') + 1);
    await copyFile(debs.unused.path, join(pool, name));
    const bytes = await readFile(debs.unused.path);
    await writeFile(
      join(dists, 'Packages'),
      [
        `Package: libc6\nSource: glibc\nVersion: 2.36-1\nArchitecture: amd64\nFilename: pool/main/g/glibc/libc6_2.36-1_amd64.deb\n`,
        `Package: libc6\nSource: glibc\nVersion: ${debs.unused.version}\nArchitecture: amd64\nFilename: pool/main/g/glibc/${name}\nSize: ${(await stat(debs.unused.path)).size}\nSHA256: ${sha256(bytes)}\n`,
        'Package: not-installed-here\nVersion: 9\nArchitecture: all\nFilename: pool/main/n/nih/nih_9_all.deb\n',
      ].join('\n'),
    );
    // the slim image names its gold: gold/nginx:3 is updated, this slim image made again
    const r = updated(await run(['update', 'slim/nginx:3', '--with', join(dists, 'Packages')], { AIM_ACTOR: 'tester@ci' }), 'unused');
    expect(r.packages).toEqual([expect.objectContaining({ name: 'libc6', from: debs.unused.installed, to: debs.unused.version, changed: [`${LIB}/libnss_dns.so.2`] })]);
    expect(r.scripts).toEqual(expect.arrayContaining([expect.objectContaining({ package: 'libc6', name: 'postrm', from: 'installed', runs: `postrm upgrade ${debs.unused.version}` })]));
    expect(r).toMatchObject({ actor: 'tester@ci', scriptRun: { changes: [] }, gold: { ref: 'gold/nginx:4' }, slim: { ref: 'slim/nginx:4', parent: { ref: 'slim/nginx:3' } } });
    expect((await entryOf('slim/nginx:4', `${LIB}/libnss_dns.so.2`))?.blob).toBe(await patchedHash(`${LIB}/libnss_dns.so.2`));
    expect(await verdicts(debs.unused.path)).toMatchObject({ 'slim/nginx:3': 'kept-not-used', 'slim/nginx:4': 'not-affected', 'gold/nginx:4': 'not-affected' });
  }, long);

  it('aim image history: parent, packages, who and when, back to the import and the hand-made slim image', async () => {
    const slim = await run<ImageHistory>(['image', 'history', 'slim/nginx']);
    expect(slim.exitCode, slim.stderr).toBe(0);
    expect(slim.json.lineage.map((s) => [s.tags, s.how])).toEqual([
      [['slim/nginx:4'], 'reslim'],
      [['slim/nginx:3'], 'reslim'],
      [['slim/nginx:2'], 'reslim'],
      [['slim/nginx:1'], 'slim'],
    ]);
    expect(slim.json.lineage[0]).toMatchObject({ gold: results.unused!.gold.id, profile: 'web', actor: 'tester@ci', packages: [{ name: 'libc6', from: debs.unused.installed, to: debs.unused.version }] });
    const gold = await run<ImageHistory>(['image', 'history', 'gold/nginx:4']);
    expect(gold.json.lineage.map((s) => [s.id, s.how])).toEqual([
      [results.unused!.gold.id, 'update'],
      [results.dropped!.gold.id, 'update'],
      [results.ssl!.gold.id, 'update'],
      [results.ssl!.parent.id, 'import'],
    ]);
    const whens = gold.json.lineage.map((s) => Date.parse(s.at!));
    expect([...whens].sort((a, b) => b - a)).toEqual(whens);
    expect(gold.json.lineage[2]).toMatchObject({ parent: results.ssl!.parent.id, packages: [{ name: 'libssl3', to: debs.ssl.version }], actor: expect.stringMatching(/.@./) });
    const first = await run<ImageHistory>(['image', 'history', 'gold/nginx:1']);
    expect(first.json.newer.map((s) => s.tags)).toEqual([['gold/nginx:2'], ['gold/nginx:3'], ['gold/nginx:4']]);
    const table = await execa(process.execPath, [runJs, 'image', 'history', 'gold/nginx', '--repo', repo]);
    expect(table.stdout).toMatch(new RegExp(`gold/nginx:4 +update +libc6 ${debs.unused.installed.replace(/[+.]/g, '\\$&')} → `));
  }, long);

  it('a postinst that changes a file: refused and rolled back without --accept-scripts; with it, the new gold holds what the script wrote', async () => {
    const refused = await run(['update', 'gold/nginx:4', '--with', debs.scripted.path]);
    expect(refused.exitCode, refused.stderr).toBe(4);
    const doc = refused.json as unknown as { error: { code: string; message: string }; result: Pick<UpdateResult, 'scripts' | 'scriptRun' | 'packages'> };
    expect(doc.error.code).toBe('E_UPDATE_SCRIPTS');
    expect(doc.error.message).toContain('/etc/issue');
    expect(doc.result.scripts).toEqual(expect.arrayContaining([expect.objectContaining({ package: 'zlib1g', name: 'postinst', from: 'new', text: expect.stringContaining('/etc/issue') })]));
    expect(doc.result.scriptRun!.changes).toEqual([{ path: '/etc/issue', change: 'modified', what: ['content'] }]);
    expect(await inRepo((r) => r.catalog.resolve('gold/nginx:5'))).toBeUndefined();

    // --reprofile: the profile's workload is traced again on the new gold, which then owns the profile
    const r = updated(await run(['update', 'gold/nginx:4', '--with', debs.scripted.path, '--accept-scripts', '--reprofile', '--tag', 'gold/nginx:scripted']), 'scripted');
    expect(r).toMatchObject({ gold: { ref: 'gold/nginx:scripted' }, slim: { ref: 'slim/nginx:5', reprofiled: true }, scriptRun: { accepted: true } });
    const profile = await inRepo((x) => x.catalog.getProfile('web'));
    expect(profile?.imageId).toBe(r.gold.id);
    expect(profile?.runs.map((x) => x.command)).toEqual(["nginx -g 'daemon off;'"]);
    expect(profile?.runs[0]!.results.map((x) => x.unmet)).toEqual([undefined]);
    expect(profile?.paths.some((p) => p.path === `${LIB}/libssl.so.3` && p.ok)).toBe(true);
    expect(await fileText('gold/nginx:scripted', '/etc/issue')).toBe(`${await readFile(join(root, 'etc/issue'), 'utf8')}patched by a postinst\n`);
    expect(await versionIn('gold/nginx:scripted', 'zlib1g')).toBe(debs.scripted.version);
    // dpkg's own database, as dpkg left it: the postinst is recorded
    expect(await fileText('gold/nginx:scripted', '/var/lib/dpkg/info/zlib1g:amd64.postinst')).toContain('patched by a postinst');
  }, long);

  it('errors: a package not installed, nothing newer, advisories and PACKAGE=VERSION, a missing file, a bad tag', async () => {
    const stage = join(tmp.dir, 'absent');
    await mkdir(join(stage, 'DEBIAN'), { recursive: true });
    await writeFile(join(stage, 'DEBIAN', 'control'), 'Package: aim-absent\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: not in any image\n');
    const absent = join(tmp.dir, 'aim-absent_1_all.deb');
    await execa('dpkg-deb', ['--root-owner-group', '--build', stage, absent]);
    expect(await run(['update', 'gold/nginx:1', '--with', absent])).toMatchObject({ exitCode: 4, json: { error: { code: 'E_UPDATE_NOT_INSTALLED' } } });
    expect(await run(['update', 'gold/nginx:2', '--with', debs.ssl.path])).toMatchObject({ exitCode: 4, json: { error: { code: 'E_UPDATE_UP_TO_DATE' } } });
    const folder = join(tmp.dir, 'old-only');
    await mkdir(folder);
    await copyFile(debs.ssl.path, join(folder, 'ssl.deb'));
    expect(await run(['update', 'gold/nginx:2', '--with', folder])).toMatchObject({ exitCode: 4, json: { error: { code: 'E_UPDATE_UP_TO_DATE' } } });
    const osv = join(tmp.dir, 'advisory.json');
    await writeFile(osv, '{"id": "X-1", "modified": "2026-01-01T00:00:00Z", "affected": []}');
    expect(await run(['update', 'gold/nginx:1', '--with', osv])).toMatchObject({ exitCode: 4, json: { error: { code: 'E_UPDATE_NEEDS_DEBS' } } });
    expect(await run(['update', 'gold/nginx:1', '--with', 'libssl3=9.9'])).toMatchObject({ exitCode: 4, json: { error: { code: 'E_UPDATE_NEEDS_DEBS' } } });
    expect(await run(['update', 'gold/nginx:1', '--with', join(tmp.dir, 'nope.deb')])).toMatchObject({ exitCode: 3, json: { error: { code: 'E_NOT_FOUND' } } });
    expect(await run(['update', 'gold/nginx:1', '--with', debs.ssl.path, '--tag', 'Bad Tag'])).toMatchObject({ exitCode: 2, json: { error: { code: 'E_CONFIG' } } });
    expect(await run(['update', 'gold/nginx:9', '--with', debs.ssl.path])).toMatchObject({ exitCode: 3, json: { error: { code: 'E_NOT_FOUND' } } });
    // a postinst that fails: dpkg's own error, with its output
    const failed = await run(['update', 'gold/nginx:4', '--with', debs.failing.path]);
    expect(failed).toMatchObject({ exitCode: 6, json: { error: { code: 'E_UPDATE_DPKG_FAILED' } } });
    expect((failed.json as unknown as { error: { message: string } }).error.message).toContain('postinst fails on purpose');
  }, long);
});
