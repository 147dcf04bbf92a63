/**
 * Which .debs aim update takes from what it is given: folders offer packages (those installed at
 * an older version are taken), a Packages index finds its .debs where Filename says (checked by
 * size and SHA256), advisories and PACKAGE=VERSION are refused; a stored .deb carries each file's md5.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashContent } from '../../src/core/debian/deb-file.js';
import { chooseDebs, readStoredDeb } from '../../src/core/lifecycle/update-input.js';
import type { PackageRecord } from '../../src/core/repository/types.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
const deb: Record<string, string> = {};
const installed: PackageRecord[] = [
  { name: 'alpha', version: '1.0', arch: 'amd64', manager: 'dpkg' },
  { name: 'gamma', version: '3.0', arch: 'all', manager: 'dpkg' },
];
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function build(name: string, version: string, arch: string, files: Record<string, string>): Promise<string> {
  const stage = join(tmp.dir, 'stage', `${name}-${version}`);
  await mkdir(join(stage, 'DEBIAN'), { recursive: true });
  await writeFile(join(stage, 'DEBIAN', 'control'), `Package: ${name}\nVersion: ${version}\nArchitecture: ${arch}\nMaintainer: t <t@example.org>\nDescription: test\n`);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(stage, path, '..'), { recursive: true });
    await writeFile(join(stage, path), text);
  }
  const out = join(tmp.dir, `${name}_${version}_${arch}.deb`);
  await execa('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, out]);
  return out;
}

beforeAll(async () => {
  tmp = await tempDir('aim-update-choose-');
  deb.alpha = await build('alpha', '1.1', 'amd64', { 'usr/share/alpha/a.txt': 'alpha 1.1\n' });
  deb.beta = await build('beta', '2.0', 'all', { 'usr/share/beta/b.txt': 'beta\n' });
  deb.gamma = await build('gamma', '3.0', 'all', { 'usr/share/gamma/g.txt': 'gamma\n' });
});
afterAll(async () => tmp?.cleanup());

describe('chooseDebs', () => {
  it('a folder offers packages: newer than installed taken, the rest left out with a note', async () => {
    const dir = join(tmp.dir, 'folder');
    await mkdir(dir);
    for (const f of Object.values(deb)) await copyFile(f, join(dir, f.slice(f.lastIndexOf('/') + 1)));
    const chosen = await chooseDebs([dir], installed);
    expect(chosen.debs.map((d) => [d.file.slice(d.file.lastIndexOf('/') + 1), d.explicit])).toEqual([['alpha_1.1_amd64.deb', false]]);
    expect(chosen.notes.join('\n')).toMatch(/beta 2\.0 left out \(not installed\)/);
    expect(chosen.notes.join('\n')).toMatch(/gamma 3\.0 left out \(not newer than installed\)/);
  });

  it('a .deb named on its own is taken whatever it is (the plan refuses what is not installed)', async () => {
    expect((await chooseDebs([deb.beta!], installed)).debs).toEqual([{ file: deb.beta, explicit: true }]);
  });

  it('a Packages index: its .debs under the archive root or beside it, checked by size and SHA256', async () => {
    const mirror = join(tmp.dir, 'mirror');
    await mkdir(join(mirror, 'pool/main/a/alpha'), { recursive: true });
    await mkdir(join(mirror, 'dists/stable/main/binary-amd64'), { recursive: true });
    await copyFile(deb.alpha!, join(mirror, 'pool/main/a/alpha/alpha_1.1_amd64.deb'));
    const bytes = await readFile(deb.alpha!);
    const index = join(mirror, 'dists/stable/main/binary-amd64/Packages');
    const stanza = (sha: string) => `Package: alpha\nVersion: 1.1\nArchitecture: amd64\nFilename: pool/main/a/alpha/alpha_1.1_amd64.deb\nSize: ${bytes.length}\nSHA256: ${sha}\n\nPackage: beta\nVersion: 2.0\nArchitecture: all\nFilename: pool/main/b/beta/beta_2.0_all.deb\n`;
    await writeFile(index, stanza(sha256(bytes)));
    expect((await chooseDebs([index], installed)).debs).toEqual([{ file: join(mirror, 'pool/main/a/alpha/alpha_1.1_amd64.deb'), explicit: false }]);
    await writeFile(index, stanza('0'.repeat(64)));
    await expect(chooseDebs([index], installed)).rejects.toMatchObject({ code: 'E_UPDATE_DEB_MISMATCH' });
    const flat = join(tmp.dir, 'flat');
    await mkdir(flat);
    await writeFile(join(flat, 'Packages'), stanza(sha256(bytes)));
    await expect(chooseDebs([join(flat, 'Packages')], installed)).rejects.toMatchObject({ code: 'E_UPDATE_DEB_MISSING' });
    await copyFile(deb.alpha!, join(flat, 'alpha_1.1_amd64.deb'));
    expect((await chooseDebs([join(flat, 'Packages')], installed)).debs).toEqual([{ file: join(flat, 'alpha_1.1_amd64.deb'), explicit: false }]);
  });

  it('advisories and PACKAGE=VERSION name nothing to install; a missing path is not found', async () => {
    const osv = join(tmp.dir, 'a.json');
    await writeFile(osv, '{"id": "X", "modified": "2026-01-01T00:00:00Z"}');
    await expect(chooseDebs([osv], installed)).rejects.toMatchObject({ code: 'E_UPDATE_NEEDS_DEBS' });
    await expect(chooseDebs(['alpha=1.2'], installed)).rejects.toMatchObject({ code: 'E_UPDATE_NEEDS_DEBS' });
    await expect(chooseDebs([join(tmp.dir, 'nope.deb')], installed)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('readStoredDeb', () => {
  it('stores each file through the given store and keeps its md5 for dpkg', async () => {
    const stored: string[] = [];
    const d = await readStoredDeb(deb.alpha!, async (content) => {
      const c = await hashContent(content);
      stored.push(c.hash);
      return c;
    });
    const f = d.files.find((x) => x.path === '/usr/share/alpha/a.txt')!;
    expect(d.md5.get(f)).toBe(createHash('md5').update('alpha 1.1\n').digest('hex'));
    expect(stored).toEqual([sha256(Buffer.from('alpha 1.1\n'))]);
    expect(d.controlText).toMatch(/^Package: alpha\n/);
  });
});
