import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectFormat, openDecompressed } from '../../src/core/import/decompress.js';
import { readTarFile } from '../../src/core/import/tar-reader.js';
import { tempDir } from '../helpers/tmp.js';

let dir: string;
let cleanup: () => Promise<void>;
let tarPath: string;
let tarBytes: Buffer;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readStream(path: string, options = {}): Promise<{ format: string; data: Buffer }> {
  const d = await openDecompressed(path, options);
  const chunks: Buffer[] = [];
  for await (const c of d.stream) chunks.push(c as Buffer);
  await d.done;
  return { format: d.format, data: Buffer.concat(chunks) };
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  return { code: 'no error', message: '' };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Compresses with the real command-line tool, as users' archives are made. */
async function compress(tool: string, args: string[], out: string): Promise<void> {
  await execa(tool, args, { inputFile: tarPath, stdout: { file: out } });
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('aim-decompress-'));
  const root = join(dir, 'tree');
  await mkdir(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'hostname'), 'gold\n');
  // Some incompressible bytes so the compressed files are large enough to cut in the middle.
  writeFileSync(join(root, 'random.bin'), createHash('sha512').update('seed').digest().toString('hex').repeat(4000));
  tarPath = join(dir, 'tree.tar');
  await execa('tar', ['-C', root, '-cf', tarPath, '.']);
  tarBytes = readFileSync(tarPath);
  writeFileSync(join(dir, 'tree.tar.gz'), gzipSync(tarBytes));
  await compress('xz', ['-c'], join(dir, 'tree.tar.xz'));
  await compress('zstd', ['-c', '-q'], join(dir, 'tree.tar.zst'));
  await compress('bzip2', ['-c'], join(dir, 'tree.tar.bz2'));
});
afterAll(async () => {
  await cleanup();
});

describe('openDecompressed', () => {
  it.each([
    ['tree.tar', 'tar'],
    ['tree.tar.gz', 'gzip'],
    ['tree.tar.xz', 'xz'],
    ['tree.tar.zst', 'zstd'],
    ['tree.tar.bz2', 'bzip2'],
  ])('%s is detected as %s by its magic bytes and decompresses byte-exactly', async (file, format) => {
    const r = await readStream(join(dir, file));
    expect(r.format).toBe(format);
    expect(sha(r.data)).toBe(sha(tarBytes));
  });

  it('detects by content, never by name', async () => {
    const disguised = join(dir, 'looks-like.tar.gz');
    writeFileSync(disguised, readFileSync(join(dir, 'tree.tar.zst')));
    expect((await readStream(disguised)).format).toBe('zstd');
    expect(detectFormat(Buffer.from('BZh9'))).toBeUndefined();
  });

  it.each(['tree.tar.gz', 'tree.tar.xz', 'tree.tar.zst', 'tree.tar.bz2'])('truncated %s is E_CORRUPT_ARCHIVE naming the file', async (file) => {
    const full = readFileSync(join(dir, file));
    const cut = join(dir, `cut-${file}`);
    writeFileSync(cut, full.subarray(0, Math.floor(full.length * 0.6)));
    const e = await errorOf(readStream(cut));
    expect(e.code).toBe('E_CORRUPT_ARCHIVE');
    expect(e.message).toContain(cut);
    expect(e.message.split('\n').length).toBe(1);
    // the same through the tar reader: the decompressor's error, not a tar error
    expect((await errorOf((async () => {
      for await (const entry of readTarFile(cut)) for await (const _ of (entry.content ?? []) as AsyncIterable<Buffer>) void _;
    })())).code).toBe('E_CORRUPT_ARCHIVE');
  });

  it('a corrupted byte inside gzip data is E_CORRUPT_ARCHIVE', async () => {
    const bad = Buffer.from(readFileSync(join(dir, 'tree.tar.gz')));
    const at = Math.floor(bad.length / 2);
    bad[at] = bad[at]! ^ 0xff;
    const path = join(dir, 'flipped.tar.gz');
    writeFileSync(path, bad);
    expect((await errorOf(readStream(path))).code).toBe('E_CORRUPT_ARCHIVE');
  });

  it('a damaged tail after the end of the tar is still reported', async () => {
    const full = readFileSync(join(dir, 'tree.tar.xz'));
    const path = join(dir, 'tail.tar.xz');
    writeFileSync(path, full.subarray(0, full.length - 8));
    const e = await errorOf((async () => {
      for await (const entry of readTarFile(path)) for await (const _ of (entry.content ?? []) as AsyncIterable<Buffer>) void _;
    })());
    expect(e.code).toBe('E_CORRUPT_ARCHIVE');
  });

  it('empty input is E_EMPTY_INPUT, garbage is E_UNKNOWN_FORMAT, a missing file E_NOT_FOUND', async () => {
    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    expect((await errorOf(openDecompressed(empty))).code).toBe('E_EMPTY_INPUT');
    const garbage = join(dir, 'garbage');
    writeFileSync(garbage, Buffer.from('PK\x03\x04 this is a zip, or something else'.repeat(30)));
    const e = await errorOf(openDecompressed(garbage));
    expect(e.code).toBe('E_UNKNOWN_FORMAT');
    expect(e.message).toContain(garbage);
    expect((await errorOf(openDecompressed(join(dir, 'nope')))).code).toBe('E_NOT_FOUND');
  });

  it('reads a byte range of a file', async () => {
    const gz = readFileSync(join(dir, 'tree.tar.gz'));
    const path = join(dir, 'embedded');
    writeFileSync(path, Buffer.concat([Buffer.alloc(1000, 1), gz, Buffer.alloc(77, 2)]));
    const r = await readStream(path, { start: 1000, length: gz.length });
    expect(r.format).toBe('gzip');
    expect(sha(r.data)).toBe(sha(tarBytes));
  });

  it('kills the decompressor when the consumer stops early', async () => {
    // 256 MiB of zeros: far more than the pipe holds, so xz would block if left alone.
    const path = join(dir, 'zeros.xz');
    await execa('sh', ['-c', `head -c 268435456 /dev/zero | xz -0 -T1 -c > '${path}'`]);
    const d = await openDecompressed(path);
    expect(d.pid).toBeGreaterThan(0);
    const it = d.stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect((first.value as Buffer).length).toBeGreaterThan(0);
    expect(alive(d.pid!)).toBe(true);
    d.close();
    await d.done;
    const deadline = Date.now() + 5000;
    while (alive(d.pid!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(d.pid!)).toBe(false);
  });

  it('breaking out of readTarFile stops the decompressor too', async () => {
    const path = join(dir, 'many.tar.zst');
    const root = join(dir, 'many');
    await mkdir(root);
    for (let i = 0; i < 50; i++) writeFileSync(join(root, `f${i}`), Buffer.alloc(1 << 20, i));
    await execa('sh', ['-c', `tar -C '${root}' -cf - . | zstd -q -c > '${path}'`]);
    let n = 0;
    for await (const _ of readTarFile(path)) if (++n === 3) break;
    expect(n).toBe(3);
    const children = async () => (await execa('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { reject: false })).stdout;
    const deadline = Date.now() + 5000;
    while (/zstd/.test(await children()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await children()).not.toMatch(/zstd|xz/);
  });
});
