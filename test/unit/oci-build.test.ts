import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ElfFacts } from '../../src/core/analyze/elf.js';
import { writeGzipLayer } from '../../src/core/build/oci-blobs.js';
import { architectureFromElf } from '../../src/core/build/oci-config.js';
import { refuseWhiteoutNames } from '../../src/core/build/oci.js';
import type { Entry } from '../../src/core/model/entry.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('aim-oci-unit-');
});
afterAll(async () => tmp.cleanup());

/** 3.7 MiB: random stretches between repeated text, so blocks compress differently and refer back across bounds. */
function sample(): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++) parts.push(Buffer.from(`line ${i % 7} of a fairly repetitive text\n`.repeat(1500)), randomBytes(i * 1997));
  return Buffer.concat(parts);
}

async function layer(data: Buffer, chunk: number, name: string) {
  return writeGzipLayer(join(tmp.dir, name), async (out) => {
    for (let at = 0; at < data.length; at += chunk) {
      if (!out.write(data.subarray(at, at + chunk))) await new Promise((r) => out.once('drain', r));
    }
  });
}

describe('gzip layer (parallel deflate)', () => {
  it('is valid gzip with the right diff_id, and the same bytes however the input is chunked', async () => {
    const data = sample();
    expect(data.length).toBeGreaterThan(3 << 20);
    const a = await layer(data, data.length, 'a');
    const b = await layer(data, 4093, 'b');
    const c = await layer(data, 1 << 20, 'c');
    expect(b.descriptor).toEqual(a.descriptor);
    expect(c.descriptor).toEqual(a.descriptor);
    expect(a.diffId).toBe(`sha256:${createHash('sha256').update(data).digest('hex')}`);
    const blob = await readFile(join(tmp.dir, 'a', 'blobs', 'sha256', a.descriptor.digest.slice(7)));
    expect(blob.length).toBe(a.descriptor.size);
    expect(`sha256:${createHash('sha256').update(blob).digest('hex')}`).toBe(a.descriptor.digest);
    expect(blob.subarray(0, 10)).toEqual(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]));
    expect(gunzipSync(blob).equals(data)).toBe(true);
    expect(blob.length).toBeLessThan(data.length);
  });

  it('handles an empty stream', async () => {
    const e = await layer(Buffer.alloc(0), 1, 'e');
    const blob = await readFile(join(tmp.dir, 'e', 'blobs', 'sha256', e.descriptor.digest.slice(7)));
    expect(gunzipSync(blob).length).toBe(0);
  });

  it('leaves no partial blob when the producer fails', async () => {
    await expect(writeGzipLayer(join(tmp.dir, 'f'), async (out) => {
      out.write(randomBytes(3 << 20));
      throw new Error('source broke');
    })).rejects.toThrow('source broke');
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(tmp.dir, 'f', 'blobs', 'sha256'))).toEqual([]);
  });

  it('leaves no partial blob when the producer fails before the file is even open', async () => {
    // The file's open and the cleanup's rm race on libuv's thread pool: try it many times.
    for (let i = 0; i < 50; i++) {
      await expect(writeGzipLayer(join(tmp.dir, 'g'), () => Promise.reject(new Error('no source')))).rejects.toThrow('no source');
    }
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(tmp.dir, 'g', 'blobs', 'sha256'))).toEqual([]);
  });
});

describe('OCI config facts', () => {
  const file = (path: string, blob: string): Entry => ({ path, type: 'file', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 1, blob });
  const elf = (machine: string, extra: Partial<ElfFacts> = {}): ElfFacts => ({ class: 64, endian: 'le', machine, type: 'dyn', needed: [], ...extra });

  it('takes the architecture from the ELF executables', () => {
    const entries = [file('/bin/a', 'a'), file('/bin/b', 'b'), file('/lib/x.so', 'x')];
    expect(architectureFromElf(entries, new Map([['a', elf('x86-64', { interp: '/lib64/ld' })], ['b', elf('x86-64')], ['x', elf('aarch64')]]))).toBe('amd64');
    expect(architectureFromElf(entries, new Map([['a', elf('aarch64', { interp: '/lib/ld' })]]))).toBe('arm64');
    expect(architectureFromElf(entries, new Map([['a', elf('ppc64', { endian: 'le' })]]))).toBe('ppc64le');
    expect(architectureFromElf(entries, new Map())).toBeUndefined();
  });

  it('refuses whiteout names anywhere in the tree', () => {
    expect(() => refuseWhiteoutNames([file('/etc/.wh.x', 'a')])).toThrow(/\/etc\/\.wh\.x cannot be put in an OCI layer/);
    expect(() => refuseWhiteoutNames([{ path: '/.wh..wh..opq', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 }])).toThrow(/E_OCI|whiteouts/);
    expect(() => refuseWhiteoutNames([file('/etc/a.wh.x', 'a'), file('/etc/wh.x', 'b')])).not.toThrow();
  });
});
