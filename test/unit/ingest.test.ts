import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ingestSource, normalizeName } from '../../src/core/import/ingest.js';
import { encodePath } from '../../src/lib/path-codec.js';
import type { SourceEntry } from '../../src/core/import/source.js';
import { FsBlobStore } from '../../src/core/repository/fs-blob-store.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { InputError } from '../../src/lib/errors.js';
import { tempDir } from '../helpers/tmp.js';
import { readdir, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { join } from 'node:path';

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: 1 };
const file = (name: string, text: string): SourceEntry => ({
  name: Buffer.from(name),
  type: 'file',
  ...meta,
  size: Buffer.byteLength(text),
  content: Readable.from([Buffer.from(text)]),
});
const dir = (name: string): SourceEntry => ({ name: Buffer.from(name), type: 'dir', ...meta, mode: 0o755 });
async function* gen(entries: SourceEntry[]) {
  for (const e of entries) yield e;
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let blobs: FsBlobStore;
beforeEach(async () => {
  tmp = await tempDir();
  await FsBlobStore.create(join(tmp.dir, 'objects'), join(tmp.dir, 'tmp'));
  blobs = new FsBlobStore(join(tmp.dir, 'objects'), join(tmp.dir, 'tmp'));
});
afterEach(async () => tmp.cleanup());

const run = (entries: SourceEntry[]) => ingestSource(gen(entries), { blobs, reporter: new RecordingReporter(), label: 'test' });

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as InputError).code;
  }
  return 'no error';
}

describe('normalizeName', () => {
  it('drops ./ and . components', () => {
    expect(normalizeName(Buffer.from('./etc/./passwd'), 't')).toBe('/etc/passwd');
    expect(normalizeName(Buffer.from('./'), 't')).toBe('/');
    expect(normalizeName(Buffer.from(''), 't')).toBe('/');
  });
  it('rejects absolute names and ..', () => {
    expect(() => normalizeName(Buffer.from('/etc/passwd'), 't')).toThrow(/absolute/);
    expect(() => normalizeName(Buffer.from('a/../../etc'), 't')).toThrow(/escape/);
    expect(() => normalizeName(Buffer.from('a/..'), 't')).toThrow(/escape/);
    expect(() => normalizeName(Buffer.from('a\0b'), 't')).toThrow(/NUL/);
  });
  it('gives every name the path its components encode to (plain ASCII names take a shortcut)', () => {
    const names = ['etc/passwd', 'a/b/c', '.hidden/...', '..a/a..', 'a/./b', 'a//b', 'a/b/', '50%/x', 'sp ace/tab\t/nl\n', '\x7f'];
    const bytes = [...names.map((n) => Buffer.from(n, 'latin1')), Buffer.from([0x61, 0x2f, 0xff, 0xfe]), Buffer.from('é/ü', 'utf8'), Buffer.from([0xc3, 0x2f, 0x41])];
    for (const raw of bytes) {
      const parts = raw.toString('latin1').split('/').filter((p) => p !== '' && p !== '.');
      const expected = '/' + parts.map((p) => encodePath(Buffer.from(p, 'latin1'))).join('/');
      expect(normalizeName(raw, 't'), raw.toString('hex')).toBe(expected);
    }
  });
});

describe('ingestSource', () => {
  it('stores contents once and synthesises missing parents', async () => {
    const r = await run([file('a/b/one', 'same'), file('two', 'same'), dir('c')]);
    expect(r.entries.map((e) => e.path)).toEqual(['/', '/a', '/a/b', '/a/b/one', '/c', '/two']);
    const one = r.entries.find((e) => e.path === '/a/b/one')!;
    const two = r.entries.find((e) => e.path === '/two')!;
    expect(one.blob).toBe(two.blob);
    expect(one.size).toBe(4);
    expect(await blobs.read(one.blob!)).toEqual(Buffer.from('same'));
    expect(r.totalSize).toBe(8);
  });

  it('rejects a file written through a symlink', async () => {
    const link: SourceEntry = { name: Buffer.from('etc'), type: 'symlink', ...meta, linkName: Buffer.from('/etc') };
    expect(await codeOf(run([link, file('etc/passwd', 'x')]))).toBe('E_PATH_THROUGH_SYMLINK');
  });

  it('rejects a hardlink to something outside the image', async () => {
    const hl: SourceEntry = { name: Buffer.from('shadow'), type: 'hardlink', ...meta, linkName: Buffer.from('../../etc/shadow') };
    expect(await codeOf(run([hl]))).toBe('E_PATH_TRAVERSAL');
    const hl2: SourceEntry = { name: Buffer.from('shadow'), type: 'hardlink', ...meta, linkName: Buffer.from('etc/shadow') };
    expect(await codeOf(run([hl2]))).toBe('E_HARDLINK_OUTSIDE');
  });

  it('applies tar\'s rule for a path listed twice: the last entry wins, a directory keeps its children', async () => {
    const r = await run([file('x', 'a'), file('x', 'b'), dir('d'), file('d/f', 'f'), { ...dir('d'), mode: 0o700 }, file('e', 'e'), dir('e')]);
    const by = (p: string) => r.entries.find((e) => e.path === p)!;
    expect(await blobs.read(by('/x').blob!)).toEqual(Buffer.from('b'));
    expect(by('/d').mode).toBe(0o700);
    expect(by('/d/f').type).toBe('file');
    expect(by('/e').type).toBe('dir');
    expect(r.entries.map((e) => e.path)).toEqual(['/', '/d', '/d/f', '/e', '/x']);
    expect(await codeOf(run([{ ...file('x', 'abc'), size: 10 }]))).toBe('E_SIZE_MISMATCH');
  });

  it('refuses an entry below a later symlink or file, naming both', async () => {
    const link: SourceEntry = { name: Buffer.from('b'), type: 'symlink', ...meta, linkName: Buffer.from('/elsewhere') };
    for (const [entries, names] of [
      [[file('b/x', 'x'), link], ['"/b"', '"/b/x"']],
      [[file('a/x', 'x'), file('a', 'plain')], ['"/a"', '"/a/x"']],
      [[dir('a'), file('a/y/x', 'x'), file('a/y', 'plain')], ['"/a/y"', '"/a/y/x"']],
    ] as [SourceEntry[], string[]][]) {
      const err = await run(entries).catch((e: unknown) => e as InputError);
      expect(err).toBeInstanceOf(InputError);
      expect((err as InputError).code).toBe('E_CONFLICTING_ENTRIES');
      for (const n of names) expect((err as InputError).message).toContain(n);
    }
    // an empty directory may be replaced; a file below a file is refused at once
    expect((await run([dir('a'), file('a', 'now a file')])).entries.find((e) => e.path === '/a')!.type).toBe('file');
    expect(await codeOf(run([file('a', 'f'), file('a/x', 'x')]))).toBe('E_NOT_A_DIRECTORY');
    expect(await codeOf(run([{ ...file('', 'root file') }]))).toBe('E_BAD_ROOT');
  });

  it('a file replaced after hardlinks named it: the links keep the old content', async () => {
    const hl = (name: string, target: string): SourceEntry => ({ name: Buffer.from(name), type: 'hardlink', ...meta, linkName: Buffer.from(target) });
    const r = await run([file('f', 'old'), hl('h1', 'f'), hl('h2', 'h1'), file('f', 'new')]);
    const by = (p: string) => r.entries.find((e) => e.path === p)!;
    expect(await blobs.read(by('/f').blob!)).toEqual(Buffer.from('new'));
    expect(by('/h1').type).toBe('file');
    expect(await blobs.read(by('/h1').blob!)).toEqual(Buffer.from('old'));
    expect(by('/h2')).toMatchObject({ type: 'hardlink', target: '/h1' });
    expect(await codeOf(run([file('f', 'x'), hl('f', 'f')]))).toBe('E_HARDLINK_OUTSIDE');
  });

  it('stores long zero runs and known holes as holes: only the data reaches the blob', async () => {
    const size = 1 << 30;
    const content = async function* () {
      yield Buffer.from('head');
      yield { hole: size - 8 };
      yield Buffer.from('tail');
    };
    const zeros = Buffer.alloc(3 << 20);
    zeros.write('mid', 2 << 20);
    const r = await run([
      { name: Buffer.from('big'), type: 'file', ...meta, size, content: content() },
      { name: Buffer.from('zeros'), type: 'file', ...meta, size: zeros.length, content: Readable.from([zeros]) },
      { name: Buffer.from('small'), type: 'file', ...meta, size: 200_000, content: Readable.from([Buffer.alloc(200_000)]) },
    ]);
    const by = (p: string) => r.entries.find((e) => e.path === p)!;
    expect(by('/big')).toMatchObject({ size, sparse: [[0, 4096], [size - 4096, 4096]] });
    expect((await blobs.read(by('/big').blob!)).length).toBe(8192);
    expect(by('/zeros')).toMatchObject({ size: zeros.length, sparse: [[2 << 20, 4096]] });
    expect((await blobs.read(by('/zeros').blob!)).subarray(0, 3).toString()).toBe('mid');
    expect(by('/small')).toMatchObject({ size: 200_000, sparse: [] });
    expect(r.totalSize).toBe(size + zeros.length + 200_000);
  });

  it('skips sockets with a warning', async () => {
    const reporter = new RecordingReporter();
    const r = await ingestSource(gen([{ name: Buffer.from('run/s'), type: 'socket', ...meta }]), { blobs, reporter, label: 't' });
    expect(r.skipped).toEqual([{ path: '/run/s', reason: 'socket' }]);
    expect(reporter.warnings()[0]!.code).toBe('W_SOCKET_SKIPPED');
  });

  it('flags ELF blobs by their first bytes', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(60)]);
    const r = await run([{ name: Buffer.from('bin'), type: 'file', ...meta, size: elf.length, content: Readable.from([elf]) }, file('txt', 'hello')]);
    expect(r.elfBlobs.size).toBe(1);
    expect(r.elfBlobs.has(r.entries.find((e) => e.path === '/bin')!.blob!)).toBe(true);
  });

  it('stores local content through putLocal and parses small ELF files it read', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(60)]);
    const text = Buffer.from('hello local\n');
    const host = join(tmp.dir, 'host');
    await writeFile(host, Buffer.concat([text, elf]));
    const local = (name: string, offset: number, length: number): SourceEntry => ({ name: Buffer.from(name), type: 'file', ...meta, size: length, local: { path: host, offset, length } });
    const r = await run([local('txt', 0, text.length), local('bin', text.length, elf.length), file('same', 'hello local\n')]);
    const by = (p: string) => r.entries.find((e) => e.path === p)!;
    expect(by('/txt').blob).toBe(by('/same').blob);
    expect(by('/txt').size).toBe(text.length);
    expect(r.elfBlobs).toEqual(new Set([by('/bin').blob]));
    expect((await blobs.read(by('/bin').blob!)).equals(elf)).toBe(true);
    expect(r.totalSize).toBe(2 * text.length + elf.length);
    // a real dynamically linked program: its facts come from ingest, not from a second read
    const trueBin = await run([{ name: Buffer.from('true'), type: 'file', ...meta, size: statSync('/bin/true').size, local: { path: '/bin/true' } }]);
    const facts = trueBin.elfFacts.get(trueBin.entries.find((e) => e.path === '/true')!.blob!);
    expect(facts?.needed).toContain('libc.so.6');
  });

  it('names a local file that vanished or is shorter than declared', async () => {
    const gone: SourceEntry = { name: Buffer.from('gone'), type: 'file', ...meta, size: 3, local: { path: join(tmp.dir, 'nope') } };
    expect(await codeOf(run([gone]))).toBe('E_SOURCE_CHANGED');
    await writeFile(join(tmp.dir, 'short'), 'ab');
    const short: SourceEntry = { name: Buffer.from('short'), type: 'file', ...meta, size: 3, local: { path: join(tmp.dir, 'short') } };
    expect(await codeOf(run([short]))).toBe('E_SIZE_MISMATCH');
  });

  it('leaves no scratch files after a failure', async () => {
    const big = Buffer.alloc(3 << 20, 7);
    await codeOf(run([{ name: Buffer.from('big'), type: 'file', ...meta, size: 5 << 20, content: Readable.from([big]) }]));
    const scratch = await blobs.scratchDir();
    expect(await readdir(scratch)).toEqual([]);
  });
});
