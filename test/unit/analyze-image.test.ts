import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeImage, parseElf, parseOsRelease } from '../../src/core/analyze/index.js';
import type { ImageView } from '../../src/core/analyze/index.js';
import type { Entry } from '../../src/core/model/entry.js';
import { RecordingReporter } from '../../src/lib/reporter.js';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** An image held in memory; counts reads per blob so tests can see what the analyzer touched. */
class MemoryImage implements ImageView {
  readonly entries = new Map<string, Entry>();
  readonly blobs = new Map<string, Buffer>();
  readonly reads = new Map<string, number>();
  failing = new Set<string>();

  dir(path: string): this {
    this.entries.set(path, { path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
    return this;
  }
  file(path: string, content: Buffer | string): string {
    const buf = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const blob = sha256(buf);
    this.blobs.set(blob, buf);
    this.entries.set(path, { path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: buf.length, blob });
    return blob;
  }
  link(path: string, target: string): this {
    this.entries.set(path, { path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target });
    return this;
  }
  hardlink(path: string, target: string): this {
    const t = this.entries.get(target)!;
    this.entries.set(path, { ...t, path, type: 'hardlink', target });
    return this;
  }
  private get(blob: string): Buffer {
    this.reads.set(blob, (this.reads.get(blob) ?? 0) + 1);
    if (this.failing.has(blob)) throw new Error('blob store is broken');
    const b = this.blobs.get(blob);
    if (!b) throw new Error(`no blob ${blob}`);
    return b;
  }
  async readBlob(blob: string): Promise<Buffer> {
    return this.get(blob);
  }
  async readBlobRange(blob: string, offset: number, length: number): Promise<Buffer> {
    return this.get(blob).subarray(offset, offset + length);
  }
}

const LS = readFileSync('/usr/bin/ls');
const LIBC = readFileSync(realpathSync('/lib/x86_64-linux-gnu/libc.so.6'));

const STATUS = `Package: coreutils
Essential: yes
Status: install ok installed
Priority: required
Section: utils
Installed-Size: 18062
Architecture: amd64
Version: 9.1-1
Description: GNU core utilities

Package: libc6
Status: install ok installed
Installed-Size: 13001
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9
Description: GNU C Library: Shared libraries

Package: libc-bin
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9
Description: GNU C Library: Binaries

Package: nodoc
Status: install ok installed
Architecture: all
Version: 1
`;

const COREUTILS_COPYRIGHT = `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: GNU coreutils

Files: *
Copyright: 1984-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/inet_ntop.c
Copyright: 1996-1999 Internet Software Consortium.
License: GPL-3+ and ISC
`;

function debianImage(): MemoryImage {
  const img = new MemoryImage();
  for (const d of ['/', '/usr', '/usr/bin', '/usr/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/etc', '/var', '/var/lib', '/var/lib/dpkg', '/var/lib/dpkg/info', '/usr/share', '/usr/share/doc', '/usr/share/doc/coreutils', '/usr/share/doc/libc6'])
    img.dir(d);
  img.link('/bin', 'usr/bin').link('/lib', 'usr/lib').link('/lib64', 'usr/lib64');
  img.file('/usr/bin/ls', LS);
  img.file('/usr/bin/dir', LS); // same content, same blob: parsed once
  img.hardlink('/usr/bin/vdir', '/usr/bin/ls');
  img.file('/usr/bin/script.sh', '#!/bin/sh\necho hi\n');
  img.file('/usr/bin/fake-elf', Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(60, 0xee)]));
  img.file('/usr/lib/x86_64-linux-gnu/libc.so.6', LIBC);
  img.file('/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', Buffer.from('not really the loader'));
  img.link('/usr/lib64/ld-linux-x86-64.so.2', '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
  img.file('/usr/lib/os-release', 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n');
  img.link('/etc/os-release', '../usr/lib/os-release');
  img.file('/var/lib/dpkg/status', STATUS);
  img.file('/var/lib/dpkg/info/coreutils.list', '/.\n/bin\n/bin/ls\n/usr\n/usr/bin\n/usr/bin/dir\n/usr/share/doc/coreutils/copyright\n');
  img.file('/var/lib/dpkg/info/coreutils.md5sums', `${createHash('md5').update(LS).digest('hex')}  bin/ls\n`);
  img.file(
    '/var/lib/dpkg/info/libc6:amd64.list',
    '/.\n/lib64/ld-linux-x86-64.so.2\n/lib/x86_64-linux-gnu/libc.so.6\n/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n/usr\n/usr/share/doc/libc6/copyright\n',
  );
  img.file('/var/lib/dpkg/info/libc-bin.list', '/.\n/usr\n/usr/share/doc/libc-bin\n');
  img.file('/var/lib/dpkg/info/nodoc.list', '/.\n/usr\n');
  img.file('/usr/share/doc/coreutils/copyright', COREUTILS_COPYRIGHT);
  img.file('/usr/share/doc/libc6/copyright', 'This is the Debian prepackaged version of the GNU C Library.\n\nLicense: LGPL, see below.\n');
  img.link('/usr/share/doc/libc-bin', 'libc6');
  return img;
}

describe('parseOsRelease', () => {
  it('unquotes like a shell', () => {
    expect(parseOsRelease('# c\nA="x \\"y\\" \\$z"\nB=\'single # not comment\'\nC=plain # comment\nbad line\n\nD=\n')).toEqual({
      A: 'x "y" $z',
      B: 'single # not comment',
      C: 'plain',
      D: '',
    });
  });
});

describe('analyzeImage on an in-memory Debian image', () => {
  it('finds distro, packages, owners, ELF facts and licenses', async () => {
    const img = debianImage();
    const reporter = new RecordingReporter();
    const facts = await analyzeImage(img, { reporter });

    expect(facts.distro).toBe('debian');
    expect(facts.os).toEqual({ id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' });
    expect(facts.osRelease?.NAME).toBe('Debian GNU/Linux');

    expect(facts.packages.map((p) => `${p.id} ${p.version} ${p.source}/${p.sourceVersion}`)).toEqual([
      'coreutils 9.1-1 coreutils/9.1-1',
      'libc-bin 2.36-9 glibc/2.36-9',
      'libc6 2.36-9 glibc/2.36-9',
      'nodoc 1 nodoc/1',
    ]);
    expect(facts.packages.find((p) => p.name === 'coreutils')).toMatchObject({ manager: 'dpkg', installedSize: 18062 * 1024, essential: true });
    expect(facts.packages.find((p) => p.name === 'coreutils')!.digests).toEqual({ '/bin/ls': `md5:${createHash('md5').update(LS).digest('hex')}` });

    // As listed, and at the canonical path behind the /bin and /lib symlinks.
    expect(facts.owners.get('/bin/ls')).toEqual(['coreutils']);
    expect(facts.owners.get('/usr/bin/ls')).toEqual(['coreutils']);
    expect(facts.owners.get('/lib/x86_64-linux-gnu/libc.so.6')).toEqual(['libc6']);
    expect(facts.owners.get('/usr/lib/x86_64-linux-gnu/libc.so.6')).toEqual(['libc6']);
    // The loader symlink itself (lstat semantics for the last component), not its target.
    expect(facts.owners.get('/usr/lib64/ld-linux-x86-64.so.2')).toEqual(['libc6']);
    expect(facts.owners.get('/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2')).toEqual(['libc6']);
    // Shared directories: every owner, sorted.
    expect(facts.owners.get('/usr')).toEqual(['coreutils', 'libc-bin', 'libc6', 'nodoc']);
    expect(facts.owners.get('/')).toEqual(['coreutils', 'libc-bin', 'libc6', 'nodoc']);
    // /bin itself is listed by coreutils; its canonical form would be /usr/bin, which it also lists.
    expect(facts.owners.get('/usr/bin')).toEqual(['coreutils']);
    // Not in the image and not listed: nothing invented.
    expect(facts.owners.has('/usr/bin/script.sh')).toBe(false);

    const lsBlob = img.entries.get('/usr/bin/ls')!.blob!;
    const libcBlob = img.entries.get('/usr/lib/x86_64-linux-gnu/libc.so.6')!.blob!;
    expect([...facts.elf.keys()].sort()).toEqual([lsBlob, libcBlob].sort());
    expect(facts.elf.get(lsBlob)).toEqual(await parseElf(async (o, l) => LS.subarray(o, o + l), LS.length));
    expect(facts.elf.get(lsBlob)).toMatchObject({ interp: '/lib64/ld-linux-x86-64.so.2', needed: expect.arrayContaining(['libc.so.6']) });
    expect(facts.elf.get(libcBlob)).toMatchObject({ soname: 'libc.so.6', type: 'dyn' });

    expect(facts.licenses).toEqual([
      {
        package: 'coreutils',
        spdx: ['GPL-3.0-or-later', 'ISC'],
        expression: 'GPL-3.0-or-later AND ISC',
        declared: ['GPL-3+', 'ISC'],
        machineReadable: true,
        origin: 'debian-copyright',
        copyrightPath: '/usr/share/doc/coreutils/copyright',
        files: [
          { files: ['*'], license: 'GPL-3+', expression: 'GPL-3.0-or-later' },
          { files: ['lib/inet_ntop.c'], license: 'GPL-3+ and ISC', expression: 'GPL-3.0-or-later AND ISC' },
        ],
      },
      // Through the /usr/share/doc/libc-bin → libc6 symlink.
      { package: 'libc-bin', spdx: [], declared: [], machineReadable: false, origin: 'debian-copyright', copyrightPath: '/usr/share/doc/libc6/copyright' },
      { package: 'libc6', spdx: [], declared: [], machineReadable: false, origin: 'debian-copyright', copyrightPath: '/usr/share/doc/libc6/copyright' },
      { package: 'nodoc', spdx: [], declared: [], machineReadable: false, origin: 'missing' },
    ]);

    const warnings = reporter.warnings();
    expect(warnings.map((w) => w.code).sort()).toEqual(['W_ELF_MALFORMED', 'W_NO_COPYRIGHT']);
    expect(warnings.find((w) => w.code === 'W_ELF_MALFORMED')?.path).toBe('/usr/bin/fake-elf');
    expect(warnings.find((w) => w.code === 'W_NO_COPYRIGHT')?.message).toContain('nodoc');
    expect(reporter.events.filter((e) => e.type === 'stage').map((e) => `${e.stage}:${e.status}`)).toEqual([
      'analyze.packages:start',
      'analyze.packages:done',
      'analyze.elf:start',
      'analyze.elf:done',
      'analyze.licenses:start',
      'analyze.licenses:done',
    ]);
    // The shared copyright file was read once for both packages (plus once for the ELF head check).
    expect(img.reads.get(img.entries.get('/usr/share/doc/libc6/copyright')!.blob!)).toBe(2);
  });

  it('parses only the given ELF candidates and reads no other heads', async () => {
    const img = debianImage();
    const lsBlob = img.entries.get('/usr/bin/ls')!.blob!;
    const facts = await analyzeImage(img, { elfCandidates: new Set([lsBlob]) });
    expect([...facts.elf.keys()]).toEqual([lsBlob]);
    expect(img.reads.get(img.entries.get('/usr/lib/x86_64-linux-gnu/libc.so.6')!.blob!)).toBeUndefined();
    expect(img.reads.get(img.entries.get('/usr/bin/script.sh')!.blob!)).toBeUndefined();
  });

  it('turns unreadable blobs into warnings', async () => {
    const img = debianImage();
    img.failing.add(img.entries.get('/usr/bin/ls')!.blob!);
    img.failing.add(img.entries.get('/usr/share/doc/coreutils/copyright')!.blob!);
    const reporter = new RecordingReporter();
    const facts = await analyzeImage(img, { reporter });
    expect(facts.elf.size).toBe(1);
    expect(facts.licenses.find((l) => l.package === 'coreutils')).toMatchObject({ origin: 'missing' });
    // The copyright file fails twice: its head for the ELF check, its content for the license.
    expect(reporter.warnings().filter((w) => w.code === 'W_ANALYZE_READ').map((w) => w.path).sort()).toEqual([
      '/usr/bin/ls',
      '/usr/share/doc/coreutils/copyright',
      '/usr/share/doc/coreutils/copyright',
    ]);
  });
});

describe('analyzeImage on other images', () => {
  it('reads an Alpine apk database', async () => {
    const img = new MemoryImage();
    for (const d of ['/', '/lib', '/lib/apk', '/lib/apk/db', '/etc', '/bin', '/usr', '/usr/lib']) img.dir(d);
    img.file('/etc/os-release', 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n');
    img.file('/lib/ld-musl-x86_64.so.1', 'x');
    img.link('/usr/lib/libc.so', '../../lib/ld-musl-x86_64.so.1');
    img.file(
      '/lib/apk/db/installed',
      'P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:ld-musl-x86_64.so.1\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\nF:bin\nR:busybox\n',
    );
    const facts = await analyzeImage(img);
    expect(facts.distro).toBe('alpine');
    expect(facts.os?.versionId).toBe('3.19.1');
    expect(facts.packages.map((p) => [p.manager, p.name, p.version])).toEqual([
      ['apk', 'busybox', '1.36.1-r15'],
      ['apk', 'musl', '1.2.4_git20230717-r4'],
    ]);
    expect(facts.owners.get('/lib/ld-musl-x86_64.so.1')).toEqual(['musl']);
    expect(facts.owners.get('/bin/busybox')).toEqual(['busybox']);
    expect(facts.licenses).toEqual([
      { package: 'busybox', spdx: ['GPL-2.0-only'], declared: ['GPL-2.0-only'], expression: 'GPL-2.0-only', machineReadable: true, origin: 'apk-license' },
      { package: 'musl', spdx: ['MIT'], declared: ['MIT'], expression: 'MIT', machineReadable: true, origin: 'apk-license' },
    ]);
  });

  it('reports an image without a package database as unknown', async () => {
    const img = new MemoryImage().dir('/').dir('/etc');
    const facts = await analyzeImage(img);
    expect(facts).toEqual({ distro: 'unknown', packages: [], owners: new Map(), elf: new Map(), licenses: [] });
    img.file('/etc/os-release', 'ID=ubuntu\nID_LIKE=debian\n');
    expect((await analyzeImage(img)).distro).toBe('debian');
  });
});

/**
 * An image backed by this machine's own files: the entries named (with every ancestor, symlinks
 * kept as symlinks). Blob ids here are the sha256 of the host path, not of the content: the test
 * is about reading through the view, and hashing the host's files would only slow it down.
 */
class HostImage implements ImageView {
  readonly entries = new Map<string, Entry>();
  private readonly paths = new Map<string, string>();

  add(path: string): void {
    const parts = path.split('/').filter(Boolean);
    this.addOne('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = `/${parts.slice(0, i).join('/')}`;
      this.addOne(prefix);
      // Through a symlinked directory (/bin → usr/bin): the rest lives under the real directory.
      if (i < parts.length && this.entries.get(prefix)?.type === 'symlink') {
        // One link at a time, so every link of a chain becomes an entry too.
        const target = posix.resolve(posix.dirname(prefix), readlinkSync(prefix));
        this.add(`${target}/${parts.slice(i).join('/')}`);
        return;
      }
    }
  }
  private addOne(path: string): void {
    if (this.entries.has(path)) return;
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) return;
    const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    if (st.isSymbolicLink()) {
      this.entries.set(path, { ...base, type: 'symlink', target: readlinkSync(path) });
    } else if (st.isDirectory()) {
      this.entries.set(path, { ...base, type: 'dir' });
    } else if (st.isFile()) {
      const blob = sha256(`host:${path}`);
      this.paths.set(blob, path);
      this.entries.set(path, { ...base, type: 'file', size: st.size, blob });
    }
  }
  async readBlob(blob: string): Promise<Buffer> {
    return readFileSync(this.paths.get(blob)!);
  }
  async readBlobRange(blob: string, offset: number, length: number): Promise<Buffer> {
    const fh = await open(this.paths.get(blob)!, 'r');
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }
}

const HOST_DPKG = existsSync('/var/lib/dpkg/status') && existsSync('/var/lib/dpkg/info/coreutils.list');

describe.skipIf(!HOST_DPKG)("analyzeImage over this machine's own dpkg database", () => {
  it('finds coreutils, libc6 and their copyright files', async () => {
    const img = new HostImage();
    img.add('/var/lib/dpkg/status');
    img.add('/var/lib/dpkg/diversions');
    img.add('/etc/os-release');
    img.add(realpathSync('/etc/os-release'));
    for (const f of readdirSync('/var/lib/dpkg/info')) if (/\.(list|md5sums|conffiles)$/.test(f)) img.add(`/var/lib/dpkg/info/${f}`);
    const lists = { coreutils: 'coreutils.list', libc6: 'libc6:amd64.list' } as const;
    for (const list of Object.values(lists)) {
      for (const p of readFileSync(`/var/lib/dpkg/info/${list}`, 'utf8').split('\n')) if (p.startsWith('/')) img.add(p);
    }
    // A package whose doc directory is a symlink to another package's.
    const status = readFileSync('/var/lib/dpkg/status', 'utf8');
    const linkedDoc = readdirSync('/usr/share/doc').find(
      (d) => lstatSync(`/usr/share/doc/${d}`).isSymbolicLink() && status.includes(`\nPackage: ${d}\n`) && existsSync(`/usr/share/doc/${d}/copyright`),
    );
    for (const name of ['coreutils', 'libc6', ...(linkedDoc ? [linkedDoc] : [])]) img.add(`/usr/share/doc/${name}/copyright`);

    const facts = await analyzeImage(img, { reporter: new RecordingReporter() });
    expect(facts.distro).toBe('debian');
    expect(facts.os?.id).toBe(parseOsRelease(readFileSync('/etc/os-release', 'utf8')).ID);

    const coreutils = facts.packages.find((p) => p.name === 'coreutils')!;
    expect(coreutils).toMatchObject({ manager: 'dpkg', essential: true, state: 'installed' });
    const lsOwners = [facts.owners.get('/bin/ls'), facts.owners.get('/usr/bin/ls')].flat();
    expect(lsOwners).toContain('coreutils');
    if (lstatSync('/bin').isSymbolicLink()) {
      // usrmerged host: listed as /bin/ls, present as /usr/bin/ls; both owned.
      expect(facts.owners.get('/usr/bin/ls')).toContain('coreutils');
      expect(facts.owners.get('/usr/lib/x86_64-linux-gnu/libc.so.6')).toContain('libc6');
    }
    expect(facts.owners.get('/lib/x86_64-linux-gnu/libc.so.6')).toContain('libc6');
    expect(facts.packages.find((p) => p.name === 'libc6')).toMatchObject({ source: 'glibc', multiArch: 'same' });

    const lsBlob = img.entries.get(realpathSync('/usr/bin/ls'))!.blob!;
    expect(facts.elf.get(lsBlob)).toMatchObject({ class: 64, machine: 'x86-64', interp: '/lib64/ld-linux-x86-64.so.2' });
    expect(facts.elf.get(lsBlob)!.needed).toContain('libc.so.6');

    const licenseOf = (p: string) => facts.licenses.find((l) => l.package === p)!;
    expect(licenseOf('coreutils')).toMatchObject({ machineReadable: true, origin: 'debian-copyright', copyrightPath: '/usr/share/doc/coreutils/copyright' });
    expect(licenseOf('coreutils').spdx).toContain('GPL-3.0-or-later');
    // Checked on this machine: glibc's copyright file is prose, not DEP-5.
    const libcText = readFileSync('/usr/share/doc/libc6/copyright', 'utf8');
    expect(licenseOf('libc6')).toMatchObject({ machineReadable: /^Format:/.test(libcText), copyrightPath: '/usr/share/doc/libc6/copyright' });
    if (!/^Format:/.test(libcText)) expect(licenseOf('libc6').spdx).toEqual([]);
    if (linkedDoc) expect(licenseOf(linkedDoc).copyrightPath).toBe(realpathSync(`/usr/share/doc/${linkedDoc}/copyright`));
  });
});

describe.skipIf(!existsSync('/usr/lib/x86_64-linux-gnu'))('analyzeImage speed', () => {
  it('analyzes ~12,000 host entries with ~1,500 ELF files in well under 2 s', async () => {
    const img = new HostImage();
    const elfBlobs = new Set<string>();
    let files = 0;
    let elf = 0;
    const walk = (dir: string) => {
      for (const name of readdirSync(dir).sort()) {
        if (img.entries.size >= 12_000) return;
        const path = `${dir}/${name}`;
        const st = lstatSync(path, { throwIfNoEntry: false });
        if (!st) continue;
        if (st.isDirectory()) walk(path);
        else {
          img.add(path);
          if (!st.isFile()) continue;
          files++;
          const e = img.entries.get(path)!;
          if (elf < 1500 && st.size >= 64) {
            const fd = openSync(path, 'r');
            const head = Buffer.alloc(4);
            readSync(fd, head, 0, 4, 0);
            closeSync(fd);
            if (head.toString('latin1') === '\x7fELF') {
              elf++;
              elfBlobs.add(e.blob!);
            }
          }
        }
      }
    };
    for (const root of ['/usr/bin', '/usr/sbin', '/usr/lib/x86_64-linux-gnu', '/usr/lib', '/usr/share']) {
      if (existsSync(root)) walk(root);
    }
    expect(img.entries.size).toBeGreaterThan(5000);
    // The import path: the ingest step already knows which blobs start with the ELF magic.
    const facts = await analyzeImage(img, { elfCandidates: elfBlobs });
    expect(files).toBeGreaterThan(0);
    expect(facts.elf.size).toBeGreaterThan(elf * 0.95);
    // Without the candidates every file's head is read to look for the magic.
    const probed = await analyzeImage(img);
    expect(probed.elf.size).toBeGreaterThanOrEqual(facts.elf.size);
  });
});
