import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileContent } from '../../src/core/export/sparse-file.js';
import { checkExtents, dataLength, expandSparse, HOLE_BLOCK, MAX_EXTENTS, MIN_HOLE, SparsePacker, type ContentChunk, type DataExtent } from '../../src/core/model/sparse.js';
import { tempDir } from '../helpers/tmp.js';

/** Packs content given as chunks (Buffers and known holes); returns the stored data and the map. */
function pack(chunks: ContentChunk[]): { data: Buffer; sparse?: DataExtent[] } {
  const p = new SparsePacker();
  const out: Buffer[] = [];
  const copy = () => out.splice(0).map((b) => Buffer.from(b)); // slices must be consumed before the next call
  const stored: Buffer[] = [];
  for (const c of chunks) {
    if (Buffer.isBuffer(c)) p.data(c, out);
    else p.hole(c.hole, out);
    stored.push(...copy());
  }
  const sparse = p.finish(out);
  stored.push(...copy());
  return { data: Buffer.concat(stored), sparse };
}

/** A file of `size` zero bytes with data written at the given offsets. */
function fileWith(size: number, writes: [number, Buffer][]): Buffer {
  const b = Buffer.alloc(size);
  for (const [off, d] of writes) d.copy(b, off);
  return b;
}

/** Splits a buffer into chunks of varying, unaligned sizes. */
function chop(b: Buffer, sizes = [1, 7, 4095, 4097, 100_000, 3]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < b.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, b.length - at);
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function expand(extents: DataExtent[], size: number, data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of expandSparse(extents, size, (async function* () { yield* chop(data, [5, 70_000]); })())) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('SparsePacker', () => {
  it('keeps dense content as it is, whatever the chunking', () => {
    const content = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31 + 7) % 256));
    for (const chunks of [[content], chop(content)]) {
      const r = pack(chunks);
      expect(r.sparse).toBeUndefined();
      expect(r.data.equals(content)).toBe(true);
    }
  });

  it('makes aligned zero runs of at least MIN_HOLE holes, and shorter ones data', () => {
    const hello = Buffer.from('hello');
    const content = fileWith(1 << 20, [[0, hello], [MIN_HOLE + HOLE_BLOCK, hello], [MIN_HOLE + 3 * HOLE_BLOCK, hello], [700_000, hello]]);
    const expected: DataExtent[] = [
      [0, HOLE_BLOCK],
      // the run between the second and third write is 1 block: data
      [MIN_HOLE + HOLE_BLOCK, 3 * HOLE_BLOCK],
      [Math.floor(700_000 / HOLE_BLOCK) * HOLE_BLOCK, HOLE_BLOCK],
    ];
    for (const chunks of [[content], chop(content)]) {
      const r = pack(chunks);
      expect(r.sparse).toEqual(expected);
      expect(r.data.length).toBe(dataLength(expected));
      expect(checkExtents(r.sparse!, content.length)).toBeUndefined();
    }
  });

  it('gives the same result for known holes as for the zeros they stand for', async () => {
    const size = 10 * MIN_HOLE + 123;
    const content = fileWith(size, [[5000, Buffer.from('abc')], [6 * MIN_HOLE + 17, Buffer.from('xyz')]]);
    const dense = pack(chop(content));
    const withHoles = pack([content.subarray(0, 8192), { hole: 6 * MIN_HOLE - 8192 }, content.subarray(6 * MIN_HOLE, 7 * MIN_HOLE), { hole: size - 7 * MIN_HOLE }]);
    expect(withHoles).toEqual(dense);
    // the zero block before "abc" is too short a run to be a hole
    expect(dense.sparse).toEqual([[0, 8192], [6 * MIN_HOLE, HOLE_BLOCK]]);
    expect((await expand(dense.sparse!, size, dense.data)).equals(content)).toBe(true);
  });

  it('a file of zeros is all hole; a short tail block counts', () => {
    expect(pack([Buffer.alloc(MIN_HOLE + 100)])).toEqual({ data: Buffer.alloc(0), sparse: [] });
    expect(pack([Buffer.alloc(MIN_HOLE - 1)]).sparse).toBeUndefined();
    // a known hole of a terabyte costs nothing
    const r = pack([Buffer.from('x'), { hole: 2 ** 40 }]);
    expect(r.sparse).toEqual([[0, HOLE_BLOCK]]);
    expect(r.data.length).toBe(HOLE_BLOCK);
  });

  it('stops making holes at MAX_EXTENTS, so the map stays bounded', () => {
    const p = new SparsePacker();
    const out: Buffer[] = [];
    const block = Buffer.alloc(HOLE_BLOCK, 1);
    let stored = 0;
    for (let i = 0; i < MAX_EXTENTS + 10; i++) {
      p.data(block, out);
      p.hole(MIN_HOLE, out);
      for (const b of out) stored += b.length;
      out.length = 0;
    }
    const map = p.finish(out)!;
    for (const b of out) stored += b.length;
    expect(map.length).toBe(MAX_EXTENTS);
    expect(dataLength(map)).toBe(stored);
    expect(checkExtents(map, (MAX_EXTENTS + 10) * (HOLE_BLOCK + MIN_HOLE))).toBeUndefined();
  });

  it('the packed data hashes like the content would when there is no hole', () => {
    const content = Buffer.alloc(200_000, 9);
    const r = pack(chop(content));
    expect(createHash('sha256').update(r.data).digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));
  });
});

describe('checkExtents', () => {
  it('names what is wrong with a map', () => {
    expect(checkExtents([[0, 10], [20, 5]], 25)).toBeUndefined();
    expect(checkExtents([[0, 10], [5, 5]], 25)).toMatch(/overlaps/);
    expect(checkExtents([[0, 10], [20, 6]], 25)).toMatch(/ends past/);
    expect(checkExtents([[0, 0]], 25)).toMatch(/invalid/);
    expect(checkExtents([[-1, 2]], 25)).toMatch(/invalid/);
  });
});

describe('writeFileContent', () => {
  it('writes a file with holes by its data only: apparent size kept, holes stay unallocated', async () => {
    const tmp = await tempDir();
    try {
      const size = 2 ** 36; // 64 GiB apparent
      const extents: DataExtent[] = [[4096, 8192], [size - 100, 100]];
      const data = Buffer.concat([Buffer.alloc(8192, 'd'), Buffer.alloc(100, 't')]);
      const path = join(tmp.dir, 'sparse');
      const fd = openSync(path, 'wx');
      await writeFileContent(fd, size, extents, (async function* () { yield* chop(data, [3000, 5000]); })());
      closeSync(fd);
      const st = statSync(path);
      expect(st.size).toBe(size);
      expect(st.blocks * 512).toBeLessThan(1 << 20);
      const probe = Buffer.alloc(12288);
      const rfd = openSync(path, 'r');
      readSync(rfd, probe, 0, probe.length, 0);
      expect(probe.equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(8192, 'd')]))).toBe(true);
      readSync(rfd, probe, 0, 100, size - 100);
      expect(probe.subarray(0, 100).equals(Buffer.alloc(100, 't'))).toBe(true);
      closeSync(rfd);
      // dense content is written as it comes; too little or too much content is refused
      const dense = join(tmp.dir, 'dense');
      const dfd = openSync(dense, 'wx');
      await writeFileContent(dfd, 5, undefined, (async function* () { yield Buffer.from('hel'); yield Buffer.from('lo'); })());
      closeSync(dfd);
      expect(readFileSync(dense, 'utf8')).toBe('hello');
      const bad = openSync(join(tmp.dir, 'bad'), 'wx');
      await expect(writeFileContent(bad, size, extents, (async function* () { yield data.subarray(0, 10); })())).rejects.toMatchObject({ code: 'E_SIZE_MISMATCH' });
      await expect(writeFileContent(bad, 10, [[5, 10]], (async function* () {})())).rejects.toMatchObject({ code: 'E_BAD_SPARSE_MAP' });
      closeSync(bad);
    } finally {
      await tmp.cleanup();
    }
  });
});
