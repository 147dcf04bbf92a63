/**
 * The .deb reader: real packages built with dpkg-deb (every compressor it offers), checked
 * against dpkg-deb's own view of them, and hand-made hostile ones that must fail with a clear code.
 */
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDeb } from '../../src/core/debian/deb-file.js';
import { FsBlobStore } from '../../src/core/repository/fs-blob-store.js';
import { buildDeb, CONTROL, handDeb } from '../helpers/deb-bytes.js';
import { dir, file, header, symlinkMember } from '../helpers/hostile/tar-bytes.js';
import { tempDir } from '../helpers/tmp.js';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-deb-');
});
afterAll(async () => tmp?.cleanup());

const LIB = Buffer.from('\x7fELF a pretend shared library\n'.repeat(100));
const FILES = [
  { path: 'usr/lib/x86_64-linux-gnu/libdemo.so.1.2', content: LIB },
  { path: 'usr/lib/x86_64-linux-gnu/libdemo.so.1', symlink: 'libdemo.so.1.2' },
  { path: 'etc/demo.conf', content: 'answer = 42\n' },
  { path: 'usr/share/doc/libdemo1/copyright', content: 'Public domain.\n' },
  { path: 'usr/bin/demo', content: '#!/bin/sh\necho demo\n', mode: 0o755 },
];

describe('readDeb on packages built by dpkg-deb', () => {
  it.each(['xz', 'gzip', 'zstd', 'none'] as const)('reads control, scripts, conffiles and every file (%s)', async (compress) => {
    const deb = await buildDeb(tmp.dir, {
      name: 'libdemo1',
      version: '1:1.2-3~deb12u1',
      source: 'demo (1.2-3)',
      files: FILES,
      scripts: { postinst: '#!/bin/sh\nldconfig\n', prerm: '#!/bin/sh\nexit 0\n' },
      conffiles: ['/etc/demo.conf'],
      compress,
    });
    const d = await readDeb(deb);
    expect(d).toMatchObject({ package: 'libdemo1', version: '1:1.2-3~deb12u1', arch: 'amd64', source: 'demo', sourceVersion: '1.2-3', installedSize: 12 * 1024 });
    expect(d.scripts.map((s) => s.name).sort()).toEqual(['postinst', 'prerm']);
    expect(d.scripts.find((s) => s.name === 'postinst')!.text).toContain('ldconfig');
    expect(d.conffiles).toEqual(['/etc/demo.conf']);
    if (compress !== 'none') expect(d.compression.data).toBe(compress === 'zstd' ? 'zstd' : compress);
    else expect(d.compression.data).toBe('tar');
    const byPath = new Map(d.files.map((f) => [f.path, f]));
    expect(byPath.get('/usr/lib/x86_64-linux-gnu/libdemo.so.1.2')?.content).toEqual({ hash: sha256(LIB), size: LIB.length });
    expect(byPath.get('/usr/lib/x86_64-linux-gnu/libdemo.so.1')).toMatchObject({ type: 'symlink', target: 'libdemo.so.1.2' });
    expect(byPath.get('/usr/bin/demo')).toMatchObject({ type: 'file', mode: 0o755, uid: 0, gid: 0 });
    // every path dpkg-deb lists, and no other (directories included)
    const listed = (await execa('dpkg-deb', ['--fsys-tarfile', deb]).pipe('tar', ['-t'])).stdout
      .split('\n')
      .map((l) => l.replace(/^\.\//, '/').replace(/\/$/, ''))
      .filter((l) => l !== '' && l !== '/' && l !== '.');
    expect(d.files.map((f) => f.path).sort()).toEqual(listed.sort());
  });

  it('names the content of a file with long zero runs as the blob store does: its data, holes mapped', async () => {
    const zeros = Buffer.concat([Buffer.from('head'), Buffer.alloc(256 * 1024), Buffer.from('tail')]);
    const deb = await buildDeb(tmp.dir, { name: 'sparse', version: '1', files: [{ path: 'var/lib/sparse.db', content: zeros }] });
    const f = (await readDeb(deb)).files.find((x) => x.path === '/var/lib/sparse.db')!;
    expect(f.content!.size).toBe(zeros.length);
    expect(f.content!.sparse).toBeDefined();
    expect(f.content!.sparse!.length).toBe(2);
    // the blob holds only the data extents
    const data = Buffer.concat(f.content!.sparse!.map(([off, len]) => zeros.subarray(off, off + len)));
    expect(f.content!.hash).toBe(sha256(data));
    // and the repository's blob store names the same bytes the same way
    await FsBlobStore.create(join(tmp.dir, 'objects'), join(tmp.dir, 'scratch'));
    const blobs = new FsBlobStore(join(tmp.dir, 'objects'), join(tmp.dir, 'scratch'));
    await writeFile(join(tmp.dir, 'sparse.db'), zeros);
    const stored = await blobs.putLocal({ path: join(tmp.dir, 'sparse.db') });
    expect({ hash: stored.hash, size: stored.size, sparse: stored.sparse }).toEqual(f.content);
    await blobs.disposeScratch();
  });
});

describe('readDeb refuses hostile packages with a clear error', () => {
  const write = async (name: string, bytes: Buffer) => {
    const p = join(tmp.dir, name);
    await writeFile(p, bytes);
    return p;
  };

  it('reads a well-formed hand-made package (the baseline of the cases below)', async () => {
    const d = await readDeb(await write('ok.deb', handDeb()));
    expect(d.files.map((f) => f.path)).toEqual(['/usr/bin/hello']);
  });

  it.each([
    ['not an ar archive', () => Buffer.from('PK\x03\x04 a zip file'), 'E_BAD_DEB', /ar magic/],
    ['an empty ar archive', () => Buffer.from('!<arch>\n'), 'E_BAD_DEB', /first ar member is missing/],
    ['members out of order', () => handDeb({ order: ['binary', 'data', 'control'] }), 'E_BAD_DEB', /expected control\.tar/],
    ['no data member', () => handDeb({ order: ['binary', 'control'] }), 'E_BAD_DEB', /expected data\.tar/],
    ['format 3.0', () => handDeb({ binary: '3.0\n' }), 'E_BAD_DEB', /format version "3\.0"/],
    ['a control file without Version', () => handDeb({ control: 'Package: hello\nArchitecture: amd64\n' }), 'E_BAD_DEB', /lacks Version/],
    ['a version dpkg refuses', () => handDeb({ control: CONTROL.replace('1.0-1', '1.0-') }), 'E_BAD_VERSION', /revision/],
    ['a package name with a slash', () => handDeb({ control: CONTROL.replace('Package: hello', 'Package: ../hello') }), 'E_BAD_DEB', /package name/],
    ['a data member escaping with ..', () => handDeb({ data: [file('./../../etc/cron.d/evil', '* * * * * root sh\n')] }), 'E_PATH_TRAVERSAL', /escape/],
    ['an absolute data member', () => handDeb({ data: [file('/etc/evil', 'x')] }), 'E_ABSOLUTE_PATH', /absolute/],
    ['a hard link to nothing before it', () => handDeb({ data: [header({ name: './usr/bin/x', typeflag: '1', linkname: './etc/shadow' })] }), 'E_BAD_DEB', /hard link/],
    ['a data.tar cut inside a header', () => {
      const deb = handDeb({ data: [dir('./usr/'), symlinkMember('./usr/lib64', 'lib')] });
      return deb.subarray(0, deb.length - 1024 - 300); // the ar member table says less
    }, 'E_TRUNCATED', /declares \d+ bytes but only \d+ remain/],
  ])('%s', async (name, bytes, code, message) => {
    const p = await write(`${name.replace(/\W+/g, '-')}.deb`, bytes());
    const err = await readDeb(p).catch((e: unknown) => e as { code: string; message: string });
    expect(err).toMatchObject({ code });
    expect((err as { message: string }).message).toMatch(message);
  });

  it('a package cut short (truncated download): E_TRUNCATED naming the member', async () => {
    const deb = await buildDeb(tmp.dir, { name: 'cut', version: '1', files: FILES });
    const size = (await readFile(deb)).length;
    await truncate(deb, Math.floor(size * 0.7));
    await expect(readDeb(deb)).rejects.toMatchObject({ code: 'E_TRUNCATED', message: expect.stringMatching(/data\.tar\.xz" declares \d+ bytes but only \d+ remain/) });
    await truncate(deb, 8 + 30); // inside the first member's header
    await expect(readDeb(deb)).rejects.toMatchObject({ code: 'E_TRUNCATED', message: expect.stringMatching(/ends inside the header of ar member 1/) });
  });

  it('a member size field that lies (huge, or not a number)', async () => {
    const deb = handDeb();
    // the size field of the third member (data.tar): after the magic and two members
    const at = deb.indexOf('data.tar') + 48;
    const huge = Buffer.from(deb);
    huge.write('9999999999', at, 10, 'latin1');
    await expect(readDeb(await write('huge.deb', huge))).rejects.toMatchObject({ code: 'E_TRUNCATED', message: expect.stringMatching(/declares 9999999999 bytes/) });
    const letters = Buffer.from(deb);
    letters.write('12ab      ', at, 10, 'latin1');
    await expect(readDeb(await write('letters.deb', letters))).rejects.toMatchObject({ code: 'E_BAD_DEB', message: expect.stringMatching(/invalid size field "12ab"/) });
  });

  it('damaged compressed data: E_CORRUPT_ARCHIVE', async () => {
    const deb = await buildDeb(tmp.dir, { name: 'damaged', version: '1', files: [{ path: 'usr/share/big', content: Buffer.from(Array.from({ length: 20000 }, (_, i) => `line ${i}\n`).join('')) }] });
    const bytes = await readFile(deb);
    const at = bytes.indexOf('data.tar.xz') + 60 + 200;
    for (let i = 0; i < 64; i++) bytes[at + i] = bytes[at + i]! ^ 0x5a;
    await expect(readDeb(await write('damaged.deb', bytes))).rejects.toMatchObject({ code: 'E_CORRUPT_ARCHIVE' });
  });

  it('more file bytes than allowed: refused before they are read', async () => {
    const deb = await buildDeb(tmp.dir, { name: 'big', version: '1', files: [{ path: 'usr/share/big', content: Buffer.alloc(100_000, 1) }] });
    await expect(readDeb(deb, { maxDataBytes: 50_000 })).rejects.toMatchObject({ code: 'E_DEB_TOO_LARGE' });
    await expect(readDeb(deb, { maxEntries: 2 })).rejects.toMatchObject({ code: 'E_DEB_TOO_LARGE' });
  });

  it('a missing file, a directory', async () => {
    await expect(readDeb(join(tmp.dir, 'nope.deb'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    await expect(readDeb(tmp.dir)).rejects.toMatchObject({ code: 'E_NOT_A_FILE' });
  });
});
