import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { InputError, NotFoundError, errnoCode } from '../../lib/errors.js';
import { fieldValue, parseDeb822 } from '../analyze/deb822.js';
import { detectFormat, openDecompressed } from '../import/decompress.js';
import { parseDebianVersion } from './version.js';

/**
 * Reads an apt Packages index (plain, or gzip / xz / zstd / bzip2 compressed, told by magic
 * bytes): one stanza per available binary package version. Streamed stanza by stanza, so a full
 * archive's index (tens of MB) never sits in memory whole; every stanza is bounded.
 */

export interface IndexedPackage {
  package: string;
  version: string;
  arch: string;
  source: string;
  sourceVersion: string;
  /** Path of the .deb in the archive ("pool/main/o/openssl/libssl3_…_amd64.deb"). */
  filename?: string;
  sha256?: string;
  size?: number;
  /** 1-based line of the stanza in the (decompressed) index. */
  line: number;
}

/** A stanza longer than this is not a package description. */
const MAX_STANZA = 1 << 20;
const MAX_STANZAS = 2_000_000;

function bad(label: string, why: string): InputError {
  return new InputError('E_BAD_PACKAGES_INDEX', `${label}: not a valid apt Packages index: ${why}`, {
    hint: 'give a Packages, Packages.gz or Packages.xz file as apt downloads it (dists/<suite>/main/binary-<arch>/)',
  });
}

/** Opens a file as text: decompressed when it starts with a compressor's magic. */
async function openText(path: string, label: string): Promise<{ stream: Readable; done: Promise<void> }> {
  let head: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new InputError('E_NOT_A_FILE', `${label} is not a regular file`);
      if (st.size === 0) throw new InputError('E_EMPTY_INPUT', `${label} is empty`);
      head = Buffer.alloc(Math.min(512, st.size));
      await fh.read(head, 0, head.length, 0);
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') throw new NotFoundError(`${label} does not exist`, { cause: e });
    throw e;
  }
  const format = detectFormat(head);
  if (format === 'tar') throw bad(label, 'it is a tar archive');
  if (format === undefined) {
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    return { stream, done: Promise.resolve() };
  }
  const d = await openDecompressed(path, { label });
  return { stream: d.stream, done: d.done };
}

/** Yields the stanzas of a Packages index in order. */
export async function* readPackagesIndex(path: string, label = path): AsyncGenerator<IndexedPackage> {
  const { stream, done } = await openText(path, label);
  const decoder = new StringDecoder('utf8');
  let count = 0;
  let carry = '';
  let lineNo = 0;
  let lines: string[] = [];
  let start = 0;
  let bytes = 0;
  const stanza = (): IndexedPackage | undefined => {
    if (lines.length === 0) return undefined;
    const text = lines.join('\n');
    const at = start;
    lines = [];
    bytes = 0;
    if (++count > MAX_STANZAS) throw bad(label, `more than ${MAX_STANZAS} stanzas`);
    if (text.includes('\0')) throw bad(label, `binary data in the stanza at line ${at}`);
    const [p] = parseDeb822(text);
    const pkg = p ? fieldValue(p, 'Package') : undefined;
    const version = p ? fieldValue(p, 'Version') : undefined;
    if (!p || !pkg || !version) throw bad(label, `the stanza at line ${at} has no ${!pkg ? 'Package' : 'Version'} field`);
    parseDebianVersion(version, `${label}:${at}: Version of ${pkg}`);
    const src = /^(\S+)(?:\s*\(\s*([^)\s]+)\s*\))?/.exec(fieldValue(p, 'Source') ?? '');
    const out: IndexedPackage = { package: pkg, version, arch: fieldValue(p, 'Architecture') ?? 'all', source: src?.[1] ?? pkg, sourceVersion: src?.[2] ?? version, line: at };
    const filename = fieldValue(p, 'Filename');
    if (filename) out.filename = filename;
    const sha256 = fieldValue(p, 'SHA256');
    if (sha256 && /^[0-9a-f]{64}$/i.test(sha256)) out.sha256 = sha256.toLowerCase();
    const size = fieldValue(p, 'Size');
    if (size && /^\d+$/.test(size)) out.size = Number(size);
    return out;
  };
  const take = (line: string): IndexedPackage | undefined => {
    lineNo++;
    if (line.trim() === '') return stanza();
    if (lines.length === 0) start = lineNo;
    lines.push(line);
    bytes += line.length + 1;
    if (bytes > MAX_STANZA) throw bad(label, `the stanza at line ${start} is longer than ${MAX_STANZA} bytes`);
    return undefined;
  };
  try {
    for await (const chunk of stream) {
      const parts = (carry + decoder.write(chunk as Buffer)).split('\n');
      carry = parts.pop()!;
      if (carry.length > MAX_STANZA) throw bad(label, `line ${lineNo + 1} is longer than ${MAX_STANZA} bytes`);
      for (const l of parts) {
        const s = take(l);
        if (s) yield s;
      }
    }
    for (const l of (carry + decoder.end()).split('\n')) {
      const s = take(l);
      if (s) yield s;
    }
    const last = stanza();
    if (last) yield last;
    await done;
  } finally {
    stream.destroy();
  }
  if (count === 0) throw bad(label, 'it holds no package stanza');
}
