import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { requireTool, spawnTool } from '../../lib/exec.js';

/** What an input file holds, told by its first bytes (never by its name). */
export type InputFormat = 'tar' | 'gzip' | 'xz' | 'zstd' | 'bzip2';

export interface DecompressedInput {
  /** The uncompressed bytes. Errors are InputErrors (E_CORRUPT_ARCHIVE) naming the input. */
  stream: Readable;
  format: InputFormat;
  /** Length in bytes of the raw (possibly compressed) input. */
  rawSize: number;
  /**
   * Resolves when the whole input was decompressed and the decompressor exited cleanly, or when
   * `close()` was called; rejects with the stream's error. Never left pending once the stream
   * ended, failed or was closed.
   */
  done: Promise<void>;
  /** Stops early: destroys the streams and kills the decompressor. Idempotent. */
  close(): void;
  /** Process id of the external decompressor (xz, zstd, bzip2), if one runs. */
  pid?: number;
}

export interface OpenDecompressedOptions {
  /** Read only `length` bytes starting at `start` (a member of an uncompressed outer tar). */
  start?: number;
  length?: number;
  /** Name used in messages (default: the path). */
  label?: string;
}

const EXTERNAL: Record<'xz' | 'zstd' | 'bzip2', string[]> = {
  xz: ['-dc'],
  zstd: ['-dcq'],
  bzip2: ['-dc'],
};

const READ_CHUNK = 1 << 20;

function startsWith(head: Buffer, bytes: number[], at = 0): boolean {
  if (head.length < at + bytes.length) return false;
  for (let i = 0; i < bytes.length; i++) if (head[at + i] !== bytes[i]) return false;
  return true;
}

/** A 512-byte block that is a tar header: its checksum holds (any tar flavour), or all zeros. */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  let unsigned = 0;
  let signed = 0;
  let any = 0;
  for (let i = 0; i < 512; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : block[i]!;
    any |= block[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  if (any === 0) return true;
  let stored = 0;
  let i = 148;
  while (i < 156 && (block[i] === 0x20 || block[i] === 0)) i++;
  const digitsFrom = i;
  while (i < 156 && block[i]! >= 0x30 && block[i]! <= 0x37) stored = stored * 8 + (block[i++]! - 0x30);
  if (i === digitsFrom) return false;
  return stored === unsigned || stored === signed;
}

/** Format of an input from its first bytes (up to 512), or undefined when unknown. */
export function detectFormat(head: Buffer): InputFormat | undefined {
  if (startsWith(head, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  if (
    startsWith(head, [0x42, 0x5a, 0x68]) &&
    head.length >= 10 &&
    head[3]! >= 0x31 &&
    head[3]! <= 0x39 &&
    (startsWith(head, [0x31, 0x41, 0x59, 0x26, 0x53, 0x59], 4) || startsWith(head, [0x17, 0x72, 0x45, 0x38, 0x50, 0x90], 4))
  ) {
    return 'bzip2';
  }
  if (isTarHeader(head)) return 'tar';
  return undefined;
}

function corrupt(label: string, format: InputFormat, detail: string, cause?: unknown): InputError {
  const line = detail.trim().split('\n').filter(Boolean).pop() ?? 'decompression failed';
  return new InputError('E_CORRUPT_ARCHIVE', `${label}: corrupt or truncated ${format} data (${line})`, {
    hint: 'the file is damaged or incomplete; download or copy it again',
    cause,
  });
}

/**
 * Opens an archive file (or a byte range of one) and streams its uncompressed bytes. The format
 * is detected from the magic bytes: uncompressed tar, gzip (in process), xz, zstd or bzip2
 * (through `xz -dc`, `zstd -dc`, `bzip2 -dc`). Bad input becomes an InputError: E_EMPTY_INPUT,
 * E_UNKNOWN_FORMAT, E_CORRUPT_ARCHIVE (also when the decompressor exits non-zero).
 */
export async function openDecompressed(path: string, options: OpenDecompressedOptions = {}): Promise<DecompressedInput> {
  const label = options.label ?? path;
  const start = options.start ?? 0;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${label} does not exist`, { cause: e });
    throw e;
  }
  let head: Buffer;
  let length: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InputError('E_NOT_A_FILE', `${label} is not a regular file`);
    length = options.length ?? Math.max(0, st.size - start);
    if (start + length > st.size) {
      throw new InputError('E_TRUNCATED', `${label}: needs ${length} bytes at offset ${start} but the file has ${st.size}`);
    }
    head = Buffer.alloc(Math.min(512, length));
    if (head.length > 0) await fh.read(head, 0, head.length, start);
  } finally {
    await fh.close();
  }
  if (length === 0) throw new InputError('E_EMPTY_INPUT', `${label} is empty`);
  const detected = detectFormat(head);
  if (!detected) {
    throw new InputError(
      'E_UNKNOWN_FORMAT',
      `${label}: not a tar archive, nor gzip, xz, zstd or bzip2 compressed (starts with ${head.subarray(0, 8).toString('hex')})`,
      { hint: 'give a tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2 file, an OCI layout or a docker save archive' },
    );
  }
  const format: InputFormat = detected;
  const raw = () => createReadStream(path, { start, end: start + length - 1, highWaterMark: READ_CHUNK });

  if (format === 'tar') return wrap(format, length, gen(raw()), () => {});

  if (format === 'gzip') {
    const input = raw();
    const gunzip = createGunzip({ chunkSize: 256 * 1024 });
    input.on('error', (e) => gunzip.destroy(e));
    input.pipe(gunzip);
    async function* gunzipped(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of gunzip) yield chunk as Buffer;
      } catch (e) {
        const code = errnoCode(e);
        if (code?.startsWith('Z_') || code?.startsWith('ERR_ZLIB')) throw corrupt(label, format, (e as Error).message, e);
        throw e;
      }
    }
    return wrap(format, length, gunzipped(), () => {
      input.destroy();
      gunzip.destroy();
    });
  }

  requireTool(format, `read ${format}-compressed archives`);
  const { child } = await spawnTool(format, EXTERNAL[format], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
  const input = raw();
  let inputError: unknown;
  input.on('error', (e) => {
    inputError = e;
    child.kill('SIGKILL');
  });
  // The decompressor may exit (corrupt data, or killed) before taking all input: not our error.
  child.stdin!.on('error', () => {});
  input.pipe(child.stdin!);
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  async function* external(): AsyncGenerator<Buffer> {
    for await (const chunk of child.stdout!) yield chunk as Buffer;
    const result = await child;
    if (inputError) throw inputError;
    if (result.exitCode !== 0) {
      throw corrupt(label, format, stderr || `${format} exited with ${result.exitCode ?? result.signal}`);
    }
  }
  const result = wrap(format, length, external(), () => {
    input.destroy();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  result.pid = child.pid;
  return result;
}

async function* gen(stream: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } finally {
    stream.destroy();
  }
}

function wrap(format: InputFormat, rawSize: number, source: AsyncGenerator<Buffer>, cleanup: () => void): DecompressedInput {
  let settle!: (e?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    let settled = false;
    settle = (e?: unknown) => {
      if (settled) return;
      settled = true;
      if (e === undefined) resolve();
      else reject(e);
    };
  });
  done.catch(() => {}); // callers that only read the stream see the error there
  let cleaned = false;
  const stop = () => {
    if (cleaned) return;
    cleaned = true;
    cleanup();
  };
  async function* run(): AsyncGenerator<Buffer> {
    try {
      yield* source;
      settle();
    } catch (e) {
      settle(e);
      throw e;
    } finally {
      stop();
      settle();
    }
  }
  const stream = Readable.from(run(), { objectMode: false, highWaterMark: READ_CHUNK });
  stream.on('close', () => {
    stop();
    settle();
  });
  return {
    stream,
    format,
    rawSize,
    done,
    close: () => {
      stop();
      settle();
      stream.destroy();
    },
  };
}
