import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readFileSync, readlinkSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indexTarFile, readTar, readTarFile, tarSource, type TarEntry } from '../../src/core/import/tar-reader.js';
import type { SourceEntry } from '../../src/core/import/source.js';
import { isHole, type ContentChunk } from '../../src/core/model/sparse.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree } from '../helpers/tree.js';

interface Read {
  name: string; // latin1 of the raw bytes
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  size?: number;
  linkName?: string;
  devMajor?: number;
  devMinor?: number;
  xattrs: Record<string, string>; // hex
  data?: Buffer;
  dataOffset: number;
}

async function readAll(entries: AsyncIterable<TarEntry>, readContent = true): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of entries) {
    const r: Read = {
      name: e.name.toString('latin1'),
      type: e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtime: e.mtime,
      mtimeNsec: e.mtimeNsec ?? 0,
      xattrs: Object.fromEntries(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, v.toString('hex')])),
      dataOffset: e.dataOffset,
    };
    if (e.size !== undefined) r.size = e.size;
    if (e.linkName) r.linkName = e.linkName.toString('latin1');
    if (e.devMajor !== undefined) r.devMajor = e.devMajor;
    if (e.devMinor !== undefined) r.devMinor = e.devMinor;
    if (e.content && readContent) {
      const chunks: Buffer[] = [];
      for await (const c of e.content as AsyncIterable<ContentChunk>) chunks.push(isHole(c) ? Buffer.alloc(c.hole) : Buffer.from(c));
      r.data = Buffer.concat(chunks);
    }
    out.push(r);
  }
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code ?? `no code: ${String(e)}`;
  }
  return 'no error';
}

/** A tar header built here, independently of the code under test. */
function rawHeader(o: {
  name: Buffer | string;
  type?: string;
  size?: number;
  sizeField?: Buffer;
  mode?: number;
  uid?: number;
  uidField?: Buffer;
  mtime?: number;
  linkName?: string;
  gnu?: boolean;
}): Buffer {
  const h = Buffer.alloc(512);
  const name = typeof o.name === 'string' ? Buffer.from(o.name) : o.name;
  name.copy(h, 0);
  const oct = (off: number, len: number, v: number) => h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
  oct(100, 8, o.mode ?? 0o644);
  if (o.uidField) o.uidField.copy(h, 108);
  else oct(108, 8, o.uid ?? 0);
  oct(116, 8, 0);
  if (o.sizeField) o.sizeField.copy(h, 124);
  else oct(124, 12, o.size ?? 0);
  oct(136, 12, o.mtime ?? 1_600_000_000);
  h.write(o.type ?? '0', 156, 1, 'latin1');
  if (o.linkName) h.write(o.linkName, 157, 'latin1');
  h.write(o.gnu ? 'ustar  \0' : 'ustar\x0000', 257, 8, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function padded(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

function paxData(records: [string, Buffer | string][]): Buffer {
  return Buffer.concat(
    records.map(([k, v]) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.isBuffer(v) ? v : Buffer.from(v), Buffer.from('\n')]);
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len = String(len).length + body.length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    }),
  );
}

function paxEntry(type: 'x' | 'g', records: [string, Buffer | string][]): Buffer {
  const data = paxData(records);
  return Buffer.concat([rawHeader({ name: 'PaxHeaders/x', type, size: data.length }), padded(data)]);
}

const END = Buffer.alloc(1024);

const fromBuffer = (b: Buffer, chunk = 4096) => {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += chunk) parts.push(b.subarray(i, i + chunk));
  return Readable.from(parts);
};

let dir: string;
let cleanup: () => Promise<void>;
let tree: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aim-tar-reader-'));
  tree = join(dir, 't');
  await buildEveryTypeTree(tree);
});
afterAll(async () => {
  await cleanup();
});

/** Every archived entry matches the file on disk: type, mode, owner, size, link, device, time. */
function expectMatchesDisk(entries: Read[], withNsec: boolean): void {
  expect(entries.length).toBeGreaterThan(20);
  const seenInodes = new Map<string, string>();
  for (const e of entries) {
    const rel = e.name.replace(/\/$/, '');
    const host = Buffer.concat([Buffer.from(dir + '/'), Buffer.from(rel, 'latin1')]);
    const st = lstatSync(host, { bigint: true });
    const expected = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : 'other';
    if (e.type === 'hardlink') {
      expect(expected).toBe('file');
      const target = lstatSync(Buffer.concat([Buffer.from(dir + '/'), Buffer.from(e.linkName!, 'latin1')]), { bigint: true });
      expect(target.ino).toBe(st.ino);
      continue;
    }
    expect({ name: e.name, type: e.type }).toEqual({ name: e.name, type: expected });
    expect(e.mode).toBe(Number(st.mode & 0o7777n));
    expect(e.uid).toBe(Number(st.uid));
    expect(e.gid).toBe(Number(st.gid));
    if (e.type !== 'dir' || rel !== 't') {
      expect(e.mtime).toBe(Number(st.mtimeNs / 1_000_000_000n));
      if (withNsec) expect(e.mtimeNsec).toBe(Number(st.mtimeNs % 1_000_000_000n));
    }
    if (e.type === 'file') {
      expect(e.size).toBe(Number(st.size));
      expect(createHash('sha256').update(e.data!).digest('hex')).toBe(createHash('sha256').update(readFileSync(host)).digest('hex'));
      if (st.nlink > 1n) seenInodes.set(String(st.ino), e.name);
    }
    if (e.type === 'symlink') expect(e.linkName).toBe((readlinkSync(host, { encoding: 'buffer' }) as Buffer).toString('latin1'));
    if (e.type === 'char') {
      expect(e.devMajor).toBe(Number(st.rdev >> 8n) & 0xfff);
      expect(e.devMinor).toBe(Number(st.rdev & 0xffn));
    }
  }
  expect(seenInodes.size).toBe(1);
}

describe('readTar on GNU tar archives', () => {
  it('reads --format=gnu: long names, non-UTF-8 names, setuid, links, fifo, device, empty dir', async () => {
    const tarPath = join(dir, 'gnu.tar');
    await execa('tar', ['--format=gnu', '-C', dir, '-cf', tarPath, 't']);
    const entries = await readAll(readTarFile(tarPath));
    expectMatchesDisk(entries, false);
    const names = entries.map((e) => e.name);
    const deep = names.find((n) => n.endsWith('/file-at-the-bottom.txt'))!;
    expect(deep.length).toBeGreaterThan(255);
    expect(entries.find((e) => e.name === deep)!.data!.toString()).toBe('deep\n');
    const latin1 = entries.find((e) => Buffer.from(e.name, 'latin1').includes(0xff))!;
    expect(Buffer.from(latin1.name, 'latin1')).toEqual(Buffer.from('t/latin1-\xe9t\xe9-\xff', 'latin1'));
    expect(entries.find((e) => e.name === 't/bin/su-like')!.mode).toBe(0o4755);
    expect(entries.find((e) => e.name === 't/tmp/')!.mode).toBe(0o1777);
    expect(entries.find((e) => e.name === 't/empty/')!.type).toBe('dir');
    expect(entries.find((e) => e.name === 't/fifo')).toMatchObject({ type: 'fifo', mode: 0o620 });
    expect(entries.find((e) => e.name === 't/dev/null')).toMatchObject({ type: 'char', devMajor: 1, devMinor: 3, mode: 0o666 });
    expect(entries.find((e) => e.name === 't/abs-link')).toMatchObject({ type: 'symlink', linkName: '/etc/config' });
    expect(entries.find((e) => e.name === 't/home/user/notes')).toMatchObject({ uid: 1000, gid: 1001, mode: 0o600 });
    const links = entries.filter((e) => e.type === 'hardlink');
    expect(links.length).toBe(2);
    const big = entries.find((e) => e.name === 't/big.bin')!;
    expect(big.size).toBe(3 * 1024 * 1024 + 5);
    expect(big.data!.equals(Buffer.alloc(3 * 1024 * 1024 + 5, 0x5a))).toBe(true);
  });

  it('reads --format=pax with xattrs: binary security.capability and nanosecond times', async () => {
    const tarPath = join(dir, 'pax.tar');
    await execa('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '-C', dir, '-cf', tarPath, 't']);
    const entries = await readAll(readTarFile(tarPath));
    expectMatchesDisk(entries, true);
    const { stdout } = await execa('getfattr', ['-n', 'security.capability', '-e', 'hex', '--only-values', join(tree, 'bin', 'ping-like')], { encoding: 'buffer' });
    const cap = Buffer.from(stdout as Uint8Array);
    expect(cap.length).toBe(20);
    const ping = entries.find((e) => e.name === 't/bin/ping-like')!;
    expect(ping.xattrs['security.capability']).toBe(cap.toString('hex'));
    expect(Buffer.from(ping.xattrs['security.capability']!, 'hex').includes(0x00)).toBe(true);
    expect(entries.find((e) => e.name === 't/etc/config')!.xattrs).toEqual({ 'user.origin': Buffer.from('aim-test').toString('hex') });
    expect(entries.find((e) => e.name === 't/etc/config')!.mtimeNsec).toBe(123456789);
    expect(entries.find((e) => e.name === 't/empty/')!.mtimeNsec).toBe(7);
  });

  it('reads --format=ustar names split into prefix and name', async () => {
    const root = join(dir, 'u');
    const long = `${'p'.repeat(90)}/${'q'.repeat(60)}`;
    await mkdir(join(root, long), { recursive: true });
    await writeFile(join(root, long, 'f'.repeat(95)), 'ustar\n');
    const tarPath = join(dir, 'ustar.tar');
    await execa('tar', ['--format=ustar', '-C', root, '-cf', tarPath, '.']);
    const entries = await readAll(readTarFile(tarPath));
    const f = entries.find((e) => e.name.endsWith('f'.repeat(95)))!;
    expect(f.name).toBe(`./${long}/${'f'.repeat(95)}`);
    expect(f.data!.toString()).toBe('ustar\n');
  });

  it('reads sparse files in every GNU format, in place and streamed, with their holes as holes', async () => {
    const root = join(dir, 's');
    await mkdir(root);
    const size = 5 << 20;
    const file = Buffer.alloc(size);
    // more regions than the old GNU header holds (4), so its extension blocks are read too
    for (const [at, text] of [[0, 'head'], [1 << 20, 'one MiB in'], [(3 << 20) + 100, 'unaligned'], [size - 3, 'end']] as const) file.write(text, at);
    for (let k = 1; k < 9; k++) file.write(`region ${k}`, k * (1 << 19) + 8192);
    const sparseFile = join(root, 'sparse');
    writeFileSync(sparseFile, '');
    truncateSync(sparseFile, size);
    const fd = openSync(sparseFile, 'r+');
    for (let at = 0; at < size; at += 4096) {
      const block = file.subarray(at, at + 4096);
      if (block.some((b) => b !== 0)) writeSync(fd, block, 0, block.length, at);
    }
    closeSync(fd);
    for (const format of [['--format=gnu'], ['--format=pax', '--sparse-version=0.0'], ['--format=pax', '--sparse-version=0.1'], ['--format=pax', '--sparse-version=1.0']]) {
      const tarPath = join(dir, `sparse${format.join('')}.tar`);
      await execa('tar', [...format, '--sparse', '-C', root, '-cf', tarPath, 'sparse']);
      const streamed = (await readAll(readTarFile(tarPath))).find((e) => e.name === 'sparse')!;
      expect(streamed.size, format.join(' ')).toBe(size);
      expect(streamed.data!.equals(file), format.join(' ')).toBe(true);
      // in place: the same content, and the holes come as holes, never as read zeros
      let holes = 0;
      let data: Buffer[] = [];
      for await (const e of tarSource.read(tarPath, {}) as AsyncIterable<SourceEntry>) {
        if (e.type !== 'file') continue;
        expect(e.local, format.join(' ')).toBeUndefined();
        for await (const c of e.content as AsyncIterable<ContentChunk>) {
          if (isHole(c)) holes += c.hole;
          data.push(isHole(c) ? Buffer.alloc(c.hole) : Buffer.from(c));
        }
      }
      expect(Buffer.concat(data).equals(file), format.join(' ')).toBe(true);
      expect(holes, format.join(' ')).toBeGreaterThan(size - 13 * 4096 * 2);
      data = [];
    }
  });
});

describe('readTar on archives from other writers', () => {
  it("reads Python's GNU base-256 numbers and pax LIBARCHIVE xattrs", async () => {
    const out = join(dir, 'py.tar');
    const script = `
import tarfile, io, base64
with tarfile.open(${JSON.stringify(out)}, 'w', format=tarfile.GNU_FORMAT) as t:
    i = tarfile.TarInfo('big-ids'); i.uid = 3000000; i.gid = 4000000; i.mtime = -1000; i.size = 3
    t.addfile(i, io.BytesIO(b'abc'))
with tarfile.open(${JSON.stringify(out)}, 'a', format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo('la'); i.size = 0; i.mtime = 5
    i.pax_headers = {'LIBARCHIVE.xattr.user.a%3Db': base64.b64encode(b'\\x00\\xffz').decode()}
    t.addfile(i)
`;
    await execa('python3', ['-c', script]);
    const entries = await readAll(readTarFile(out));
    expect(entries.find((e) => e.name === 'big-ids')).toMatchObject({ uid: 3000000, gid: 4000000, mtime: -1000, size: 3 });
    expect(entries.find((e) => e.name === 'big-ids')!.data!.toString()).toBe('abc');
    expect(entries.find((e) => e.name === 'la')!.xattrs).toEqual({ 'user.a=b': '00ff7a' });
  });

  it('keeps raw bytes of pax path and SCHILY.xattr values; applies global headers; parses negative fractional mtime', async () => {
    const rawName = Buffer.from([0x64, 0x69, 0x72, 0x2f, 0xff, 0xfe, 0x80, 0x2e, 0x62, 0x69, 0x6e]);
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const content = Buffer.from('hello');
    const tar = Buffer.concat([
      paxEntry('g', [['uid', '4242'], ['SCHILY.xattr.user.global', 'g']]),
      paxEntry('x', [['path', rawName], ['SCHILY.xattr.security.capability', cap], ['mtime', '1700000000.000000001']]),
      rawHeader({ name: 'fallback', size: content.length }),
      padded(content),
      paxEntry('x', [['mtime', '-1.25'], ['uid', '7'], ['SCHILY.xattr.user.global', '']]),
      rawHeader({ name: 'second', type: '5' }),
      rawHeader({ name: 'third', type: '2', linkName: 'second' }),
      END,
    ]);
    const entries = await readAll(readTar(fromBuffer(tar, 700)));
    expect(entries.map((e) => Buffer.from(e.name, 'latin1'))).toEqual([rawName, Buffer.from('second'), Buffer.from('third')]);
    expect(entries[0]).toMatchObject({ uid: 4242, mtime: 1700000000, mtimeNsec: 1, size: 5, xattrs: { 'security.capability': cap.toString('hex'), 'user.global': '67' } });
    expect(entries[0]!.data!.toString()).toBe('hello');
    expect(entries[1]).toMatchObject({ type: 'dir', uid: 7, mtime: -2, mtimeNsec: 750_000_000, xattrs: {} });
    expect(entries[2]).toMatchObject({ type: 'symlink', uid: 4242, linkName: 'second', xattrs: { 'user.global': '67' } });
  });

  it('reads GNU long link names and skips unread content', async () => {
    const longTarget = 'x/'.repeat(80) + 'target';
    const data = Buffer.alloc(3000, 7);
    const tar = Buffer.concat([
      rawHeader({ name: 'big', size: data.length, gnu: true }),
      padded(data),
      rawHeader({ name: '././@LongLink', type: 'K', size: longTarget.length + 1, gnu: true }),
      padded(Buffer.from(longTarget + '\0')),
      rawHeader({ name: 'link', type: '2', gnu: true }),
      END,
    ]);
    const entries = await readAll(readTar(fromBuffer(tar, 1000)), false);
    expect(entries.map((e) => [e.name, e.type, e.linkName])).toEqual([
      ['big', 'file', undefined],
      ['link', 'symlink', longTarget],
    ]);
    expect(entries[0]!.dataOffset).toBe(512);
  });

  it('ends at a clean EOF on a block boundary without end-of-archive blocks', async () => {
    const tar = Buffer.concat([rawHeader({ name: 'a', size: 1 }), padded(Buffer.from('a'))]);
    expect((await readAll(readTar(fromBuffer(tar)))).map((e) => e.data!.toString())).toEqual(['a']);
  });
});

describe('readTar errors', () => {
  it('bad header checksum is E_CORRUPT_ARCHIVE', async () => {
    const good = Buffer.concat([rawHeader({ name: 'a', size: 1 }), padded(Buffer.from('a')), rawHeader({ name: 'b' }), END]);
    const bad = Buffer.from(good);
    bad[1024 + 1] = 0x41; // a byte of the second header's name
    expect((await readAll(readTar(fromBuffer(good)))).length).toBe(2);
    expect(await codeOf(readAll(readTar(fromBuffer(bad))))).toBe('E_CORRUPT_ARCHIVE');
    const path = join(dir, 'badsum.tar');
    writeFileSync(path, bad);
    await expect(readAll(readTarFile(path))).rejects.toThrow(/badsum\.tar: corrupt tar archive: header checksum mismatch/);
  });

  it('truncation inside content, inside a header and after an extended header is E_TRUNCATED', async () => {
    const full = readFileSync(join(dir, 'pax.tar'));
    const index = await indexTarFile(join(dir, 'pax.tar'));
    const big = index.members.find((m) => m.name.toString() === 't/big.bin')!;
    const cutInContent = full.subarray(0, big.dataOffset + 1000);
    expect(await codeOf(readAll(readTar(fromBuffer(cutInContent, 65536))))).toBe('E_TRUNCATED');
    const file = join(dir, 'cut.tar');
    writeFileSync(file, cutInContent);
    // With the file size known the error comes at the header, before the entry is handed out.
    const seen: string[] = [];
    const err = await codeOf(
      (async () => {
        for await (const e of readTarFile(file)) seen.push(e.name.toString('latin1'));
      })(),
    );
    expect(err).toBe('E_TRUNCATED');
    expect(seen).not.toContain('t/big.bin');
    expect(await codeOf(readAll(readTar(fromBuffer(full.subarray(0, big.headerOffset + 100)))))).toBe('E_TRUNCATED');
    const paxOnly = paxEntry('x', [['path', 'p']]);
    expect(await codeOf(readAll(readTar(fromBuffer(paxOnly))))).toBe('E_TRUNCATED');
  });

  it('a declared size larger than the input fails at once', async () => {
    const tar = Buffer.concat([rawHeader({ name: 'huge', size: 0o77777777777 }), Buffer.alloc(1024)]);
    const path = join(dir, 'huge.tar');
    writeFileSync(path, tar);
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const e of readTarFile(path)) seen.push(e.name.toString());
      })(),
    ).rejects.toMatchObject({ code: 'E_TRUNCATED', message: expect.stringMatching(/huge.*8589934591 bytes/) });
    expect(seen).toEqual([]);
    // base-256 sizes beyond 2^53 are rejected as corrupt
    const b256 = Buffer.concat([rawHeader({ name: 'b', sizeField: Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) }), END]);
    expect(await codeOf(readAll(readTar(fromBuffer(b256))))).toBe('E_CORRUPT_ARCHIVE');
  });

  it('garbage and empty files are rejected by format', async () => {
    const garbage = join(dir, 'garbage.bin');
    writeFileSync(garbage, Buffer.from('this is not an archive at all, just some text\n'.repeat(40)));
    expect(await codeOf(readAll(readTarFile(garbage)))).toBe('E_UNKNOWN_FORMAT');
    const empty = join(dir, 'empty.tar');
    writeFileSync(empty, '');
    expect(await codeOf(readAll(readTarFile(empty)))).toBe('E_EMPTY_INPUT');
    expect(await codeOf(readAll(readTar(fromBuffer(Buffer.alloc(700, 0x61)))))).toBe('E_CORRUPT_ARCHIVE');
  });
});

describe('indexTarFile', () => {
  it('lists the same members and offsets as the streaming reader', async () => {
    const path = join(dir, 'pax.tar');
    const streamed = await readAll(readTarFile(path), false);
    const { members, complete } = await indexTarFile(path);
    expect(complete).toBe(true);
    expect(members.map((m) => [m.name.toString('latin1'), m.type, m.dataOffset])).toEqual(streamed.map((e) => [e.name, e.type, e.dataOffset]));
    const cfg = members.find((m) => m.name.toString() === 't/etc/config')!;
    expect(readFileSync(path).subarray(cfg.dataOffset, cfg.dataOffset + cfg.dataSize).toString()).toBe('key=value\n');
    expect(cfg.mtimeNsec).toBe(123456789);
    const first = await indexTarFile(path, { limit: 3 });
    expect(first).toMatchObject({ complete: false });
    expect(first.members.length).toBe(3);
  });
});

describe('tarSource', () => {
  /** What the import sees: metadata plus the content, from a byte range of the tar or a stream. */
  async function viaSource(path: string) {
    const out: { name: string; meta: unknown; data?: Buffer; local: boolean }[] = [];
    const files = new Map<string, Buffer>();
    for await (const e of tarSource.read(path, {}) as AsyncIterable<SourceEntry>) {
      const { name, type, mode, uid, gid, mtime, mtimeNsec, size, linkName, devMajor, devMinor, xattrs } = e;
      const meta = { type, mode, uid, gid, mtime, mtimeNsec, size, linkName, devMajor, devMinor, xattrs };
      let data: Buffer | undefined;
      if (e.local) {
        const p = e.local.path!.toString();
        const whole = files.get(p) ?? readFileSync(p);
        files.set(p, whole);
        data = whole.subarray(e.local.offset, e.local.offset! + e.local.length!);
      } else if (e.content) {
        const chunks: Buffer[] = [];
        for await (const c of e.content as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
        data = Buffer.concat(chunks);
      }
      out.push({ name: name.toString('latin1'), meta, data, local: e.local !== undefined });
    }
    return out;
  }

  it('reads an uncompressed tar in place: the same entries and contents as the streaming reader', async () => {
    for (const tar of ['gnu.tar', 'pax.tar']) {
      const path = join(dir, tar);
      const inPlace = await viaSource(path);
      const streamed: typeof inPlace = [];
      for await (const e of readTarFile(path)) {
        const { name, type, mode, uid, gid, mtime, mtimeNsec, size, linkName, devMajor, devMinor, xattrs } = e;
        let data: Buffer | undefined;
        if (e.content) {
          const chunks: Buffer[] = [];
          for await (const c of e.content as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
          data = Buffer.concat(chunks);
        }
        streamed.push({ name: name.toString('latin1'), meta: { type, mode, uid, gid, mtime, mtimeNsec, size, linkName, devMajor, devMinor, xattrs }, data, local: true });
      }
      const files = inPlace.filter((e) => (e.meta as { type: string }).type === 'file');
      expect(files.length).toBeGreaterThan(5);
      expect(files.every((e) => e.local)).toBe(true);
      // contents compared by digest: deep equality of megabyte Buffers is slow in vitest
      const digest = ({ local: _, data, ...e }: (typeof inPlace)[number]) => ({ ...e, data: data && createHash('sha256').update(data).digest('hex') });
      expect(inPlace.map(digest)).toEqual(streamed.map(digest));
      expect(inPlace.find((e) => e.name === 't/big.bin')!.data!.equals(Buffer.alloc(3 * 1024 * 1024 + 5, 0x5a))).toBe(true);
    }
  });

  it('reads extended headers larger than its read window and contents across it', async () => {
    const bigValue = Buffer.alloc(10_000, 0x41);
    const parts: Buffer[] = [];
    const contents: Buffer[] = [];
    for (let i = 0; i < 12; i++) {
      const content = Buffer.alloc(i * 700 + 1, i);
      contents.push(content);
      if (i % 3 === 0) parts.push(paxEntry('x', [['SCHILY.xattr.user.big', bigValue], ['mtime', `${i}.5`]]));
      parts.push(rawHeader({ name: `f${i}`, size: content.length }), padded(content));
    }
    const path = join(dir, 'window.tar');
    writeFileSync(path, Buffer.concat([...parts, END]));
    const entries = await viaSource(path);
    expect(entries.map((e) => e.name)).toEqual(contents.map((_, i) => `f${i}`));
    for (const [i, e] of entries.entries()) {
      expect(e.local).toBe(true);
      expect(e.data!.equals(contents[i]!)).toBe(true);
      const xattrs = (e.meta as { xattrs?: Record<string, Buffer> }).xattrs;
      if (i % 3 === 0) expect(xattrs!['user.big']!.equals(bigValue)).toBe(true);
      else expect(xattrs).toBeUndefined();
    }
  });

  it('streams compressed tars, and reports truncation of an uncompressed one before the entry', async () => {
    const gz = join(dir, 'pax.tar.gz');
    await execa('sh', ['-c', `gzip -c ${join(dir, 'pax.tar')} > ${gz}`]);
    const entries = await viaSource(gz);
    expect(entries.some((e) => e.local)).toBe(false);
    expect(entries.find((e) => e.name === 't/etc/config')!.data!.toString()).toBe('key=value\n');
    const full = readFileSync(join(dir, 'pax.tar'));
    const big = (await indexTarFile(join(dir, 'pax.tar'))).members.find((m) => m.name.toString() === 't/big.bin')!;
    const cut = join(dir, 'cut-source.tar');
    writeFileSync(cut, full.subarray(0, big.dataOffset + 1000));
    const seen: string[] = [];
    const err = await codeOf((async () => {
      for await (const e of tarSource.read(cut, {}) as AsyncIterable<SourceEntry>) seen.push(e.name.toString('latin1'));
    })());
    expect(err).toBe('E_TRUNCATED');
    expect(seen).not.toContain('t/big.bin');
    expect(seen.length).toBeGreaterThan(3);
  });
});

describe('readTar on large archives', () => {
  it('streams a 64 MiB archive with bounded chunk sizes', async () => {
    const root = join(dir, 'speed');
    await mkdir(root);
    for (let i = 0; i < 16; i++) writeFileSync(join(root, `f${i}`), Buffer.alloc(4 << 20, i));
    const path = join(dir, 'speed.tar');
    await execa('tar', ['-C', root, '-cf', path, '.']);
    let bytes = 0;
    let maxChunk = 0;
    for await (const e of readTarFile(path)) {
      for await (const c of (e.content ?? []) as AsyncIterable<Buffer>) {
        bytes += c.length;
        maxChunk = Math.max(maxChunk, c.length);
      }
    }
    expect(bytes).toBe(64 << 20);
    expect(maxChunk).toBeLessThanOrEqual(1 << 20);
    expect(statSync(path).size).toBeGreaterThan(64 << 20);
  });
});
