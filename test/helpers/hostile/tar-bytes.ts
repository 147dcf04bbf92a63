import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

/**
 * Tar archives byte by byte, for inputs no well-behaved writer makes: every header field can be
 * given as a number (written in octal), a bigint (GNU base-256, negative ones too) or raw bytes,
 * and the checksum is computed last (unless given), so the damage is exactly the one intended.
 */

export type Field = number | bigint | Buffer | string;

export type Compressor = 'gzip' | 'zstd' | 'xz' | 'bzip2';

export interface HeaderFields {
  name?: Field;
  mode?: Field;
  uid?: Field;
  gid?: Field;
  size?: Field;
  mtime?: Field;
  typeflag?: string;
  linkname?: Field;
  magic?: 'ustar' | 'gnu' | 'v7';
  devmajor?: Field;
  devminor?: Field;
  prefix?: Field;
  checksum?: Field;
  /** Raw edits after the fields (e.g. an old GNU sparse map at 386). */
  edit?: (h: Buffer) => void;
}

/** GNU base-256: two's complement over the whole field, top bit of the first byte set. */
export function base256(value: bigint, len: number): Buffer {
  const b = Buffer.alloc(len);
  let v = BigInt.asUintN(8 * len, value);
  for (let i = len - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  b[0] = b[0]! | 0x80;
  return b;
}

function put(h: Buffer, off: number, len: number, v: Field | undefined): void {
  if (v === undefined) return;
  if (typeof v === 'bigint') base256(v, len).copy(h, off);
  else if (typeof v === 'number') h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
  else Buffer.from(v).copy(h, off, 0, len);
}

export function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(512);
  put(h, 0, 100, f.name ?? 'file');
  put(h, 100, 8, f.mode ?? 0o644);
  put(h, 108, 8, f.uid ?? 0);
  put(h, 116, 8, f.gid ?? 0);
  put(h, 124, 12, f.size ?? 0);
  put(h, 136, 12, f.mtime ?? 1700000000);
  h.write(f.typeflag ?? '0', 156, 1, 'latin1');
  put(h, 157, 100, f.linkname);
  const magic = f.magic ?? 'ustar';
  if (magic === 'ustar') h.write('ustar\x0000', 257, 8, 'latin1');
  if (magic === 'gnu') h.write('ustar  \x00', 257, 8, 'latin1');
  put(h, 329, 8, f.devmajor ?? (magic === 'v7' ? undefined : 0));
  put(h, 337, 8, f.devminor ?? (magic === 'v7' ? undefined : 0));
  if (magic === 'ustar') put(h, 345, 155, f.prefix);
  f.edit?.(h);
  if (f.checksum !== undefined) put(h, 148, 8, f.checksum);
  else {
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  }
  return h;
}

export const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

/** Data padded to whole blocks. */
export const data = (b: Buffer | string) => {
  const buf = Buffer.from(b);
  return Buffer.concat([buf, pad(buf.length)]);
};

/** "<len> <key>=<value>\n" records (len counts itself). */
export function paxRecords(records: [string, string | Buffer][]): Buffer {
  return Buffer.concat(
    records.map(([k, v]) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')]);
      let len = body.length + 1;
      while (String(len).length + body.length !== len) len = String(len).length + body.length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    }),
  );
}

/** A pax extended header ('x', or 'g' for global) with its records. */
export function pax(records: [string, string | Buffer][], typeflag = 'x'): Buffer {
  const body = paxRecords(records);
  return Buffer.concat([header({ name: 'PaxHeaders/x', typeflag, size: body.length }), data(body)]);
}

/** A regular file member. */
export function file(name: string, content: string | Buffer, extra: HeaderFields = {}): Buffer {
  const b = Buffer.from(content);
  return Buffer.concat([header({ name, size: b.length, ...extra }), data(b)]);
}

export const dir = (name: string, extra: HeaderFields = {}) => header({ name, typeflag: '5', mode: 0o755, ...extra });
export const symlinkMember = (name: string, target: string) => header({ name, typeflag: '2', linkname: target, mode: 0o777 });
export const hardlinkMember = (name: string, target: string) => header({ name, typeflag: '1', linkname: target });

/** Members followed by the end-of-archive marker. */
export const archive = (...members: Buffer[]) => Buffer.concat([...members, Buffer.alloc(1024)]);

export async function writeTar(path: string, bytes: Buffer, compress?: Compressor): Promise<string> {
  if (!compress) {
    await writeFile(path, bytes);
    return path;
  }
  if (compress === 'gzip') {
    await writeFile(path, gzipSync(bytes));
    return path;
  }
  await writeFile(path, await compressed(bytes, compress));
  return path;
}

const COMPRESS: Record<Compressor, string[]> = {
  gzip: ['gzip', '-1', '-c'],
  zstd: ['zstd', '-q', '-1', '-c'],
  xz: ['xz', '-0', '-T1', '-c'],
  bzip2: ['bzip2', '-1', '-c'],
};
/** Zeros are compressed in runs of this size, each once per compressor and process. */
const ZERO_RUN = 64 << 20;
const zeroRuns = new Map<string, Promise<Buffer>>();

async function compressed(bytes: Buffer, compress: Compressor): Promise<Buffer> {
  const [cmd, ...args] = COMPRESS[compress];
  const r = await execa(cmd!, args, { input: bytes, encoding: 'buffer' });
  return Buffer.from(r.stdout as Uint8Array);
}

function zeroRun(length: number, compress: Compressor): Promise<Buffer> {
  const key = `${compress} ${length}`;
  let run = zeroRuns.get(key);
  if (!run) zeroRuns.set(key, (run = compressed(Buffer.alloc(length), compress)));
  return run;
}

/**
 * Writes `prefix` and then `zeros` zero bytes to `path`, compressed, as a concatenation of
 * compressed streams (gzip members, zstd frames, xz and bzip2 streams): every decompressor reads
 * such a file as one stream of the concatenated content. The zeros go as one 64 MiB run
 * compressed once and repeated, so a bomb of many GiB costs the test milliseconds to make, not
 * the seconds of compressing all its zeros.
 */
export async function compressedZeros(path: string, zeros: number, compress: Compressor, prefix?: Buffer): Promise<string> {
  const parts: Buffer[] = [];
  if (prefix?.length) parts.push(await compressed(prefix, compress));
  const whole = Math.floor(zeros / ZERO_RUN);
  if (whole > 0) {
    const run = await zeroRun(ZERO_RUN, compress);
    for (let i = 0; i < whole; i++) parts.push(run);
  }
  if (zeros % ZERO_RUN > 0) parts.push(await zeroRun(zeros % ZERO_RUN, compress));
  await writeFile(path, Buffer.concat(parts));
  return path;
}

/**
 * A compressed tar holding one file of `size` zero bytes: a decompression bomb whose content is
 * nothing but a hole (the header, then the data and end blocks as zeros).
 */
export async function zeroBomb(path: string, size: number, compress: Compressor, name = 'zeros'): Promise<string> {
  const head = header({ name, size: size > 0o77777777777 ? 0 : size, ...(size > 0o77777777777 ? { size: BigInt(size) } : {}) });
  const blocks = Math.ceil(size / 512) + 2;
  return compressedZeros(path, blocks * 512, compress, head);
}
