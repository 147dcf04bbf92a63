/**
 * The update planner on a small merged-/usr tree with a dpkg database: files written through
 * /lib → usr/lib, files the new version dropped, conffiles changed locally (kept, .dpkg-dist
 * beside) or not, a diversion by another package, a hardlink to a replaced file, dpkg's status
 * paragraph and info files, the scripts listed, and the refusals.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { DebFile } from '../../src/core/debian/deb-file.js';
import { installedParagraph } from '../../src/core/debian/dpkg-db.js';
import { planUpdate, type StoredDeb } from '../../src/core/lifecycle/update-plan.js';
import type { Entry } from '../../src/core/model/entry.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const blobs = new Map<string, Buffer>();
const put = (text: string) => {
  const b = Buffer.from(text);
  blobs.set(sha(b), b);
  return { blob: sha(b), size: b.length };
};
const dir = (path: string): Entry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1 });
const file = (path: string, text: string, mode = 0o644): Entry => ({ path, type: 'file', mode, uid: 0, gid: 0, mtime: 1, ...put(text) });
const LIB = '/usr/lib/x86_64-linux-gnu';

const STATUS = `Package: base
Status: install ok installed
Architecture: all
Version: 1
Description: the base

Package: libfoo
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 10
Maintainer: Someone <a@b.c>
Architecture: amd64
Multi-Arch: same
Version: 1.0-1
Conffiles:
 /etc/foo.conf ${md5(Buffer.from('foo=1\n'))}
 /etc/bar.conf ${md5(Buffer.from('bar=1\n'))}
Description: the foo library
 It does foo.
Homepage: https://foo.example

`;

function image(): Entry[] {
  return [
    dir('/'),
    dir('/etc'),
    file('/etc/foo.conf', 'foo=1\nlocal=yes\n'),
    file('/etc/bar.conf', 'bar=1\n'),
    { path: '/lib', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 1, target: 'usr/lib' },
    dir('/opt'),
    { path: '/opt/keep', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtime: 1, target: `${LIB}/libfoo.so.1` },
    dir('/usr'),
    dir('/usr/bin'),
    file('/usr/bin/foo', 'the diverted-to wrapper', 0o755),
    file('/usr/bin/foo.distrib', 'foo 1.0', 0o755),
    dir('/usr/lib'),
    dir(LIB),
    file(`${LIB}/libfoo-old.so`, 'old only'),
    file(`${LIB}/libfoo.so.1`, 'libfoo 1.0'),
    dir('/usr/share'),
    dir('/usr/share/doc'),
    dir('/usr/share/doc/libfoo'),
    file('/usr/share/doc/libfoo/README', 'readme 1.0'),
    dir('/var'),
    dir('/var/lib'),
    dir('/var/lib/dpkg'),
    file('/var/lib/dpkg/status', STATUS),
    file('/var/lib/dpkg/diversions', '/usr/bin/foo\n/usr/bin/foo.distrib\nfoo-wrapper\n'),
    dir('/var/lib/dpkg/info'),
    file('/var/lib/dpkg/info/base.list', '/.\n/etc\n/usr\n/usr/share\n/usr/share/doc\n'),
    file('/var/lib/dpkg/info/libfoo:amd64.list', `/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libfoo.so.1\n/lib/x86_64-linux-gnu/libfoo-old.so\n/etc\n/etc/foo.conf\n/etc/bar.conf\n/usr\n/usr/bin\n/usr/bin/foo\n/usr/share\n/usr/share/doc\n/usr/share/doc/libfoo\n/usr/share/doc/libfoo/README\n`),
    file('/var/lib/dpkg/info/libfoo:amd64.md5sums', 'x  lib/x86_64-linux-gnu/libfoo.so.1\n'),
    file('/var/lib/dpkg/info/libfoo:amd64.triggers', 'activate-noawait ldconfig\n'),
    file('/var/lib/dpkg/info/libfoo:amd64.prerm', '#!/bin/sh\nexit 0\n', 0o755),
  ];
}

const CONTROL = `Package: libfoo
Version: 1.1-1
Architecture: amd64
Maintainer: Someone <a@b.c>
Installed-Size: 11
Homepage: https://foo.example
Multi-Arch: same
Section: libs
Priority: optional
Description: the foo library
 It does foo.
`;

function deb(version = '1.1-1', pkg = 'libfoo'): StoredDeb {
  const md5s = new Map<DebFile, string>();
  const d = (path: string): DebFile => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 5 });
  const f = (path: string, text: string, mode = 0o644): DebFile => {
    const b = Buffer.from(text);
    blobs.set(sha(b), b);
    const x: DebFile = { path, type: 'file', mode, uid: 0, gid: 0, mtime: 5, content: { hash: sha(b), size: b.length } };
    md5s.set(x, md5(b));
    return x;
  };
  const files = [
    d('/etc'),
    f('/etc/foo.conf', 'foo=2\n'),
    f('/etc/bar.conf', 'bar=2\n'),
    d('/lib'),
    d('/lib/x86_64-linux-gnu'),
    f('/lib/x86_64-linux-gnu/libfoo.so.1', 'libfoo 1.1'),
    d('/usr'),
    d('/usr/bin'),
    f('/usr/bin/foo', 'foo 1.1', 0o755),
    d('/usr/share'),
    d('/usr/share/doc'),
    d('/usr/share/doc/libfoo'),
    f('/usr/share/doc/libfoo/NEWS', 'news 1.1'),
  ];
  return {
    file: `/debs/${pkg}_${version}_amd64.deb`,
    package: pkg,
    version,
    arch: 'amd64',
    source: pkg,
    sourceVersion: version,
    multiArch: 'same',
    scripts: [{ name: 'postinst', size: 20, text: '#!/bin/sh\nldconfig\n' }],
    conffiles: ['/etc/foo.conf', '/etc/bar.conf'],
    controlText: CONTROL.replace('libfoo', pkg).replace('1.1-1', version),
    controlMembers: [
      { name: 'postinst', mode: 0o755, data: Buffer.from('#!/bin/sh\nldconfig\n') },
      { name: 'conffiles', mode: 0o644, data: Buffer.from('/etc/foo.conf\n/etc/bar.conf\n') },
    ],
    files,
    compression: { control: 'xz', data: 'xz' },
    md5: md5s,
  };
}

const read = async (h: string) => blobs.get(h)!;
const byPath = (entries: Entry[]) => new Map(entries.map((e) => [e.path, e] as const));
const text = async (entries: Entry[], path: string, contents: Map<string, Buffer>) => {
  const e = byPath(entries).get(path)!;
  return (contents.get(e.blob!) ?? blobs.get(e.blob!))!.toString();
};

describe('planUpdate', () => {
  it('writes the new files through symlinked directories and diversions, drops what the new version lost', async () => {
    const plan = await planUpdate({ entries: image(), debs: [deb()], readBlob: read });
    const m = byPath(plan.entries);
    expect(m.get('/lib')).toMatchObject({ type: 'symlink', target: 'usr/lib' });
    expect(await text(plan.entries, `${LIB}/libfoo.so.1`, plan.contents)).toBe('libfoo 1.1');
    expect(m.has('/lib/x86_64-linux-gnu/libfoo.so.1')).toBe(false);
    expect(m.has(`${LIB}/libfoo-old.so`)).toBe(false);
    expect(m.has('/usr/share/doc/libfoo/README')).toBe(false);
    expect(m.get('/usr/share/doc/libfoo/NEWS')).toMatchObject({ type: 'file', mtime: 5 });
    // /usr/bin/foo is diverted by another package: the new file goes to foo.distrib
    expect(await text(plan.entries, '/usr/bin/foo', plan.contents)).toBe('the diverted-to wrapper');
    expect(await text(plan.entries, '/usr/bin/foo.distrib', plan.contents)).toBe('foo 1.1');
    // a hardlink to the replaced file keeps the old content
    expect(m.get('/opt/keep')).toMatchObject({ type: 'file' });
    expect(await text(plan.entries, '/opt/keep', plan.contents)).toBe('libfoo 1.0');
    expect(plan.packages).toEqual([
      {
        name: 'libfoo', arch: 'amd64', from: '1.0-1', to: '1.1-1',
        changed: ['/etc/bar.conf', '/usr/bin/foo.distrib', `${LIB}/libfoo.so.1`],
        added: ['/usr/share/doc/libfoo/NEWS'],
        removed: ['/usr/lib/x86_64-linux-gnu/libfoo-old.so', '/usr/share/doc/libfoo/README'],
        keptConffiles: ['/etc/foo.conf'],
      },
    ]);
  });

  it('keeps a conffile changed in the image and writes the package version beside it; replaces an unchanged one', async () => {
    const plan = await planUpdate({ entries: image(), debs: [deb()], readBlob: read });
    expect(await text(plan.entries, '/etc/foo.conf', plan.contents)).toBe('foo=1\nlocal=yes\n');
    expect(await text(plan.entries, '/etc/foo.conf.dpkg-dist', plan.contents)).toBe('foo=2\n');
    expect(await text(plan.entries, '/etc/bar.conf', plan.contents)).toBe('bar=2\n');
  });

  it("updates dpkg's database as dpkg does: status paragraph, list, md5sums, control members; old info files go", async () => {
    const plan = await planUpdate({ entries: image(), debs: [deb()], readBlob: read });
    const status = await text(plan.entries, '/var/lib/dpkg/status', plan.contents);
    const para = status.split('\n\n').find((p) => p.startsWith('Package: libfoo'))!;
    expect(para.split('\n').map((l) => (l.startsWith(' ') ? '…' : l.split(':')[0]))).toEqual([
      'Package', 'Status', 'Priority', 'Section', 'Installed-Size', 'Maintainer', 'Architecture', 'Multi-Arch', 'Version', 'Conffiles', '…', '…', 'Description', '…', 'Homepage',
    ]);
    expect(para).toContain('Status: install ok installed\n');
    expect(para).toContain(`\n /etc/foo.conf ${md5(Buffer.from('foo=2\n'))}\n /etc/bar.conf ${md5(Buffer.from('bar=2\n'))}\n`);
    expect(status.startsWith('Package: base\n')).toBe(true);
    expect(status.endsWith('Homepage: https://foo.example\n\n')).toBe(true);
    const list = await text(plan.entries, '/var/lib/dpkg/info/libfoo:amd64.list', plan.contents);
    expect(list.split('\n').slice(0, 4)).toEqual(['/.', '/etc', '/etc/foo.conf', '/etc/bar.conf']);
    const sums = await text(plan.entries, '/var/lib/dpkg/info/libfoo:amd64.md5sums', plan.contents);
    expect(sums).toBe(`${md5(Buffer.from('libfoo 1.1'))}  lib/x86_64-linux-gnu/libfoo.so.1\n${md5(Buffer.from('foo 1.1'))}  usr/bin/foo\n${md5(Buffer.from('news 1.1'))}  usr/share/doc/libfoo/NEWS\n`);
    const m = byPath(plan.entries);
    expect(m.get('/var/lib/dpkg/info/libfoo:amd64.postinst')).toMatchObject({ mode: 0o755 });
    expect(m.has('/var/lib/dpkg/info/libfoo:amd64.conffiles')).toBe(true);
    expect(m.has('/var/lib/dpkg/info/libfoo:amd64.triggers')).toBe(false);
    expect(m.has('/var/lib/dpkg/info/libfoo:amd64.prerm')).toBe(false);
    expect(await text(plan.entries, '/var/lib/dpkg/info/base.list', plan.contents)).toContain('/usr/share/doc');
  });

  it('lists the scripts dpkg runs for the upgrade, in its order', async () => {
    const plan = await planUpdate({ entries: image(), debs: [deb()], readBlob: read });
    expect(plan.scripts.map((s) => [s.name, s.from, s.runs])).toEqual([
      ['prerm', 'installed', 'prerm upgrade 1.1-1'],
      ['postinst', 'new', 'postinst configure 1.0-1'],
      ['triggers', 'installed', 'activates ldconfig'],
    ]);
  });

  it('the newest of several .debs of a package; the same or an older version is left out; a package not installed is refused', async () => {
    const two = await planUpdate({ entries: image(), debs: [deb('1.1-1'), deb('1.2-1')], readBlob: read });
    expect(two.packages.map((p) => p.to)).toEqual(['1.2-1']);
    const same = await planUpdate({ entries: image(), debs: [deb('1.0-1')], readBlob: read });
    expect(same.packages).toEqual([]);
    expect(same.skipped).toEqual([expect.objectContaining({ name: 'libfoo', why: 'already installed' })]);
    await expect(planUpdate({ entries: image(), debs: [deb('1.1-1', 'libbar')], readBlob: read })).rejects.toMatchObject({ code: 'E_UPDATE_NOT_INSTALLED' });
    await expect(planUpdate({ entries: image().filter((e) => e.path !== '/var/lib/dpkg/status'), debs: [deb()], readBlob: read })).rejects.toMatchObject({ code: 'E_UPDATE_NO_DPKG' });
  });

  it('refuses a package file where the image has a directory', async () => {
    const entries = [...image(), dir('/usr/share/doc/libfoo/NEWS')];
    await expect(planUpdate({ entries, debs: [deb()], readBlob: read })).rejects.toMatchObject({ code: 'E_UPDATE_CONFLICT' });
  });
});

describe('installedParagraph', () => {
  it("orders fields as dpkg does and leaves out the archive's own", () => {
    const p = installedParagraph('Version: 2\nPackage: x\nFilename: pool/x.deb\nSize: 10\nX-Custom: y\nDepends: libc6\nArchitecture: all\nDescription: d\n', []);
    expect(p).toBe('Package: x\nStatus: install ok installed\nArchitecture: all\nVersion: 2\nDepends: libc6\nDescription: d\nX-Custom: y');
  });
});
