/** What `aim impact` (and later `aim update --with`) accepts as an update, told apart by content. */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateTarget, parsePackageSpec, readUpdate } from '../../src/core/lifecycle/update.js';
import { buildDeb } from '../helpers/deb-bytes.js';
import { projectRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-update-');
});
afterAll(async () => tmp?.cleanup());

describe('PACKAGE=VERSION', () => {
  it('names a binary package, one architecture of it, or a source package', () => {
    expect(parsePackageSpec('libssl3=3.0.15-1~deb12u1')).toMatchObject({ by: 'binary', name: 'libssl3', version: '3.0.15-1~deb12u1' });
    expect(parsePackageSpec('libssl3:arm64=3.0.15-1')).toMatchObject({ by: 'binary', name: 'libssl3', arch: 'arm64' });
    const src = parsePackageSpec('src:openssl=3.0.15-1~deb12u1');
    expect(src).toMatchObject({ by: 'source', name: 'openssl' });
    expect(evaluateTarget(src, { version: '3.0.15-1~deb12u1+b1', sourceVersion: '3.0.14-1~deb12u2', arch: 'amd64' })).toEqual({ affected: true, fixed: '3.0.15-1~deb12u1' });
    expect(evaluateTarget(src, { version: '3.0.15-1~deb12u1', sourceVersion: '3.0.15-1~deb12u1', arch: 'amd64' })).toEqual({ affected: false });
  });

  it('refuses what it cannot read, saying what it expected', () => {
    expect(() => parsePackageSpec('libssl3 = 3.0')).toThrow(/neither a file nor PACKAGE=VERSION/);
    expect(() => parsePackageSpec('Libssl3=3.0')).toThrow(/neither a file nor PACKAGE=VERSION/);
    expect(() => parsePackageSpec('src:openssl:amd64=3.0')).toThrow(/no architecture/);
    expect(() => parsePackageSpec('libssl3=3.0-')).toThrow(expect.objectContaining({ code: 'E_BAD_VERSION' }));
  });
});

describe('readUpdate tells inputs apart by content', () => {
  it('a .deb, an OSV file, a Packages index, PACKAGE=VERSION', async () => {
    const deb = await buildDeb(tmp.dir, { name: 'demo', version: '2.0-1', files: [{ path: 'usr/bin/demo', content: 'x' }] });
    const named = join(tmp.dir, 'no-suffix');
    await copyFile(deb, named);
    expect(await readUpdate(named)).toMatchObject({ kind: 'deb', targets: [{ by: 'binary', name: 'demo', version: '2.0-1', arch: 'amd64' }] });
    const osv = join(projectRoot, 'test', 'fixtures', 'osv', 'AIM-TEST-2026-0004.json');
    const u = await readUpdate(osv);
    expect(u).toMatchObject({ kind: 'osv', advisories: [{ id: 'AIM-TEST-2026-0004' }] });
    expect(u.notes.join('\n')).toMatch(/npm left out/);
    const index = join(tmp.dir, 'Packages');
    await writeFile(index, 'Package: demo\nVersion: 3.0-1\nArchitecture: amd64\n');
    expect(await readUpdate(index)).toMatchObject({ kind: 'packages-index', targets: [{ name: 'demo', version: '3.0-1' }] });
    expect(await readUpdate('demo=4.0-1')).toMatchObject({ kind: 'package-version', targets: [{ name: 'demo', version: '4.0-1' }] });
  });

  it('a folder of .debs and advisories; other files are noted and left out', async () => {
    const dir = join(tmp.dir, 'folder');
    await mkdir(dir);
    await copyFile(await buildDeb(tmp.dir, { name: 'one', version: '1-1', files: [{ path: 'usr/bin/one', content: '1' }] }), join(dir, 'one.deb'));
    await copyFile(join(projectRoot, 'test', 'fixtures', 'osv', 'AIM-TEST-2026-0003.json'), join(dir, 'base-files.json'));
    await writeFile(join(dir, 'README'), 'notes\n');
    const u = await readUpdate(dir);
    expect(u.kind).toBe('mixed');
    expect(u.targets.map((t) => [t.by, t.name])).toEqual([
      ['source', 'base-files'],
      ['binary', 'one'],
    ]);
    expect(u.notes).toEqual(['README: not a .deb or .json file, left out']);
  });

  it('nothing to read: a missing file, an empty one, an empty folder', async () => {
    await expect(readUpdate(join(tmp.dir, 'nope.deb'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await writeFile(join(tmp.dir, 'empty'), '');
    await expect(readUpdate(join(tmp.dir, 'empty'))).rejects.toMatchObject({ code: 'E_EMPTY_INPUT' });
    await mkdir(join(tmp.dir, 'nothing'));
    await expect(readUpdate(join(tmp.dir, 'nothing'))).rejects.toMatchObject({ code: 'E_EMPTY_INPUT' });
  });
});
