import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTar, type TarWriteEntry } from '../../src/core/export/tar-writer.js';
import { readTar, readTarFile, type TarEntry } from '../../src/core/import/tar-reader.js';
import { isHole, type ContentChunk, type DataExtent } from '../../src/core/model/sparse.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree, compareSnapshots, snapshotTree } from '../helpers/tree.js';

let dir: string;
let cleanup: () => Promise<void>;
let tree: string;
/** The every-type tree as read (through GNU tar's pax output) into memory. */
let source: TarWriteEntry[];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function toBuffer(entries: TarWriteEntry[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  // fresh content streams on every write
  await writeTar(
    entries.map((e) => ({ ...e, content: e.content ? Readable.from([...(e.content as unknown as Buffer[])]) : undefined })),
    out,
  );
  return Buffer.concat(chunks);
}

/** Entries kept in memory with their contents as an array of one Buffer. */
async function load(entries: AsyncIterable<TarEntry>): Promise<TarWriteEntry[]> {
  const out: TarWriteEntry[] = [];
  for await (const e of entries) {
    const w: TarWriteEntry = { name: e.name, type: e.type as TarWriteEntry['type'], mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime };
    if (e.mtimeNsec) w.mtimeNsec = e.mtimeNsec;
    if (e.size !== undefined) w.size = e.size;
    if (e.linkName) w.linkName = e.linkName;
    if (e.devMajor !== undefined) w.devMajor = e.devMajor;
    if (e.devMinor !== undefined) w.devMinor = e.devMinor;
    if (e.xattrs) w.xattrs = e.xattrs;
    if (e.content) {
      const chunks: Buffer[] = [];
      for await (const c of e.content as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
      w.content = [Buffer.concat(chunks)] as unknown as AsyncIterable<Buffer>;
    }
    out.push(w);
  }
  return out;
}

function comparable(entries: TarWriteEntry[]) {
  return entries.map((e) => ({
    name: e.name.toString('hex'),
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    mtime: e.mtime,
    mtimeNsec: e.mtimeNsec ?? 0,
    size: e.type === 'file' ? (e.size ?? 0) : undefined,
    linkName: e.linkName?.toString('hex'),
    dev: e.type === 'char' || e.type === 'block' ? [e.devMajor ?? 0, e.devMinor ?? 0] : undefined,
    xattrs: Object.fromEntries(Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, v.toString('hex')])),
    data: e.content ? sha((e.content as unknown as Buffer[])[0]!) : undefined,
  }));
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aim-tar-writer-'));
  tree = join(dir, 't');
  await buildEveryTypeTree(tree);
  const gnuPax = join(dir, 'gnu-pax.tar');
  await execa('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '-C', tree, '-cf', gnuPax, '.']);
  source = await load(readTarFile(gnuPax));
});
afterAll(async () => {
  await cleanup();
});

describe('writeTar', () => {
  it('round-trips every entry type through readTar unchanged', async () => {
    const bytes = await toBuffer(source);
    expect(bytes.length % 10240).toBe(0);
    const back = await load(readTar(Readable.from([bytes])));
    expect(comparable(back)).toEqual(comparable(source));
    expect(source.some((e) => e.xattrs?.['security.capability'])).toBe(true);
    expect(source.some((e) => e.name.length > 255)).toBe(true);
  });

  it('is deterministic: the same entries give the same bytes', async () => {
    const a = await toBuffer(source);
    const b = await toBuffer(source);
    expect(sha(a)).toBe(sha(b));
  });

  it('GNU tar extracts it as root into the identical tree (modes, owners, ns times, caps, links, devices)', async () => {
    const out = join(dir, 'ours.tar');
    writeFileSync(out, await toBuffer(source));
    const x = join(dir, 'extracted');
    await mkdir(x);
    await execa('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', out, '-C', x]);
    const diffs = compareSnapshots(await snapshotTree(tree), await snapshotTree(x));
    expect(diffs).toEqual([]);
    const { stdout } = await execa('getfattr', ['-n', 'security.capability', '-e', 'hex', join(x, 'bin', 'ping-like')]);
    expect(stdout).toMatch(/security\.capability=0x0100000200200000/);
  });

  it("Python's tarfile reads names, types, modes, owners, links, devices and xattrs", async () => {
    const out = join(dir, 'py.tar');
    writeFileSync(out, await toBuffer(source));
    const script = `
import tarfile, json, os, sys
res = []
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        res.append({'name': os.fsencode(m.name).hex(), 'type': m.type.decode(), 'mode': m.mode, 'uid': m.uid, 'gid': m.gid,
                    'size': m.size, 'link': os.fsencode(m.linkname).hex(), 'dev': [m.devmajor, m.devminor],
                    'mtime': str(m.mtime), 'xattrs': sorted(k for k in m.pax_headers if k.startswith('SCHILY.xattr.'))})
print(json.dumps(res))
`;
    const { stdout } = await execa('python3', ['-c', script, out]);
    const py = JSON.parse(stdout) as { name: string; type: string; mode: number; uid: number; gid: number; size: number; link: string; dev: number[]; xattrs: string[] }[];
    const flags: Record<string, string> = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };
    expect(py.length).toBe(source.length);
    py.forEach((m, i) => {
      const e = source[i]!;
      const name = e.type === 'dir' && !e.name.toString().endsWith('/') ? Buffer.concat([e.name, Buffer.from('/')]) : e.name;
      // tarfile strips the trailing slash of directory names
      expect(m.name).toBe(name.toString('hex').replace(/2f$/, ''));
      expect(m.type).toBe(flags[e.type]);
      expect([m.mode, m.uid, m.gid]).toEqual([e.mode, e.uid, e.gid]);
      if (e.type === 'file') expect(m.size).toBe(e.size);
      if (e.linkName) expect(m.link).toBe(e.linkName.toString('hex'));
      if (e.type === 'char') expect(m.dev).toEqual([e.devMajor, e.devMinor]);
      expect(m.xattrs).toEqual(Object.keys(e.xattrs ?? {}).map((k) => `SCHILY.xattr.${k}`).sort());
    });
  });

  it('uses pax records only where ustar cannot hold the value', async () => {
    const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 } as const;
    const nonUtf8 = Buffer.from([0x61, 0xff, 0x62]);
    const entries: TarWriteEntry[] = [
      { ...base, name: Buffer.from('plain'), type: 'file', size: 0 },
      { ...base, name: nonUtf8, type: 'file', size: 0 },
      { ...base, name: Buffer.from('caf\u00e9'), type: 'dir' },
      { ...base, name: Buffer.from('neg'), type: 'fifo', mtime: -2, mtimeNsec: 750_000_000 },
      { ...base, name: Buffer.from('ids'), type: 'symlink', uid: 3_000_000, gid: 2_097_152, linkName: Buffer.from('t'.repeat(150)) },
      { ...base, name: Buffer.from('dev'), type: 'block', devMajor: 259, devMinor: 3_000_000 },
      { ...base, name: Buffer.from('hl'), type: 'hardlink', linkName: Buffer.from('plain') },
    ];
    const bytes = await toBuffer(entries);
    const text = bytes.toString('latin1');
    expect(text.startsWith('plain\0')).toBe(true); // no pax header before a plain entry
    expect(text).toContain('hdrcharset=BINARY\n');
    expect(text.match(/hdrcharset/g)!.length).toBe(1); // valid UTF-8 needs none
    expect(bytes.includes(Buffer.from(' path=caf\u00e9/\n'))).toBe(true);
    expect(text).toContain('mtime=-1.250000000\n');
    expect(text).toContain(' uid=3000000\n');
    expect(text).toContain(' gid=2097152\n');
    expect(text).toContain('SCHILY.devminor=3000000\n');
    const back = await load(readTar(Readable.from([bytes])));
    expect(back.map((e) => [e.name.toString('hex'), e.type])).toEqual([
      [Buffer.from('plain').toString('hex'), 'file'],
      [nonUtf8.toString('hex'), 'file'],
      [Buffer.from('caf\u00e9/').toString('hex'), 'dir'],
      [Buffer.from('neg').toString('hex'), 'fifo'],
      [Buffer.from('ids').toString('hex'), 'symlink'],
      [Buffer.from('dev').toString('hex'), 'block'],
      [Buffer.from('hl').toString('hex'), 'hardlink'],
    ]);
    expect(back[3]).toMatchObject({ mtime: -2, mtimeNsec: 750_000_000 });
    expect(back[4]).toMatchObject({ uid: 3_000_000, gid: 2_097_152, linkName: Buffer.from('t'.repeat(150)) });
    expect(back[5]).toMatchObject({ devMajor: 259, devMinor: 3_000_000 });
    // GNU tar lists them too
    const p = join(dir, 'special.tar');
    writeFileSync(p, bytes);
    const { stdout } = await execa('tar', ['-tvf', p], { encoding: 'buffer' });
    expect(Buffer.from(stdout as Uint8Array).toString('latin1')).toMatch(/3000000\/2097152 .* ids -> t{150}/);
  });

  it('writes sizes beyond 8 GiB with a pax size record', async () => {
    const size = 9 * 1024 ** 3;
    const zeros = Buffer.alloc(1 << 22);
    async function* content() {
      for (let left = size; left > 0; left -= zeros.length) yield left >= zeros.length ? zeros : zeros.subarray(0, left);
    }
    const head: Buffer[] = [];
    let headLength = 0;
    let total = 0;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        total += chunk.length;
        if (headLength < 4096) {
          head.push(Buffer.from(chunk.subarray(0, 4096)));
          headLength += chunk.length;
        }
        cb();
      },
    });
    await writeTar([{ name: Buffer.from('huge'), type: 'file', mode: 0o600, uid: 0, gid: 0, mtime: 1, size, content: content() }], sink);
    // pax header + records + ustar header, the data, then two zero blocks up to a 10 KiB record
    expect(total).toBe(Math.ceil((1536 + size + 1024) / 10240) * 10240);
    const prefix = Buffer.concat(head).subarray(0, 4096);
    expect(prefix.toString('latin1')).toContain(' size=9663676416\n');
    const stream = new PassThrough();
    stream.end(prefix);
    for await (const e of readTar(stream)) {
      expect(e.size).toBe(size);
      break;
    }
  }, 120_000);

  it('refuses content that does not match the declared size', async () => {
    const out = new PassThrough();
    out.resume();
    await expect(
      writeTar([{ name: Buffer.from('f'), type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 10, content: Readable.from([Buffer.from('short')]) }], out),
    ).rejects.toMatchObject({ code: 'E_SIZE_MISMATCH' });
  });

  it('output read back by GNU tar has the same member list as the source archive', async () => {
    const ours = join(dir, 'list.tar');
    writeFileSync(ours, await toBuffer(source));
    const list = async (p: string) => Buffer.from((await execa('tar', ['-tf', p], { encoding: 'buffer' })).stdout as Uint8Array).toString('latin1');
    expect(await list(ours)).toBe(await list(join(dir, 'gnu-pax.tar')));
    expect(readFileSync(ours).length).toBeGreaterThan(3 * 1024 * 1024);
  });

  it('writes files with holes in GNU pax sparse 1.0: GNU tar and Python extract them sparse, readTar reads them back', async () => {
    const size = 3 * 1024 ** 3; // 3 GiB apparent, 8 KiB of data
    const sparse: DataExtent[] = [[4096, 4096], [size - 4096, 4096]];
    const data = Buffer.concat([Buffer.alloc(4096, 'a'), Buffer.alloc(4096, 'z')]);
    const entries: TarWriteEntry[] = [
      { name: Buffer.from('./'), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1 },
      { name: Buffer.from('./var/log/lastlog'), type: 'file', mode: 0o664, uid: 0, gid: 43, mtime: 1, size, sparse, content: [data] as unknown as AsyncIterable<Buffer> },
    ];
    const archive = join(dir, 'sparse.tar');
    writeFileSync(archive, await toBuffer(entries));
    expect(readFileSync(archive).length).toBeLessThan(64 * 1024);
    const members = (await execa('tar', ['-tf', archive])).stdout.split('\n');
    expect(members).toEqual(['./', './var/log/lastlog']);
    for (const tool of ['gnu', 'python'] as const) {
      const out = join(dir, `sparse-out-${tool}`);
      await mkdir(out);
      if (tool === 'gnu') await execa('tar', ['-xf', archive, '-C', out]);
      else await execa('python3', ['-c', 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])', archive, out]);
      const st = statSync(join(out, 'var/log/lastlog'));
      expect(st.size, tool).toBe(size);
      if (tool === 'gnu') expect(st.blocks * 512, tool).toBeLessThan(1 << 20); // the holes stayed holes
      const fd = openSync(join(out, 'var/log/lastlog'), 'r');
      const probe = Buffer.alloc(8192);
      readSync(fd, probe, 0, 8192, 0);
      expect(probe.equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 'a')])), tool).toBe(true);
      readSync(fd, probe, 0, 8192, size - 8192);
      expect(probe.equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 'z')])), tool).toBe(true);
      closeSync(fd);
    }
    for await (const e of readTarFile(archive)) {
      if (e.type !== 'file') continue;
      expect(e.name.toString()).toBe('./var/log/lastlog');
      expect(e.size).toBe(size);
      const chunks: ContentChunk[] = [];
      for await (const c of e.content as AsyncIterable<ContentChunk>) chunks.push(c);
      expect(chunks.filter(isHole).reduce((n, h) => n + h.hole, 0)).toBe(size - 8192);
    }
  }, 120_000);
});
