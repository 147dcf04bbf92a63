/**
 * Facts from ELF headers, in pure TypeScript: class, byte order, machine, type, the program
 * interpreter (PT_INTERP) and the dynamic section's DT_NEEDED, DT_SONAME, DT_RUNPATH and DT_RPATH.
 *
 * Input is untrusted (any file of any image): every offset is checked against the file size,
 * every count is capped, and garbage gives `undefined` or partial facts, never an exception.
 * Only the reader's own errors (I/O) propagate.
 */

export interface ElfFacts {
  class: 32 | 64;
  endian: 'le' | 'be';
  /** "x86-64", "aarch64", "i386", … or "em-<n>" for machines not in the table. */
  machine: string;
  type: 'exec' | 'dyn' | 'rel' | 'core' | 'other';
  /** PT_INTERP: the program interpreter ("/lib64/ld-linux-x86-64.so.2"). */
  interp?: string;
  /** DT_NEEDED in dynamic-section order. */
  needed: string[];
  soname?: string;
  runpath?: string[];
  rpath?: string[];
}

/** Reads `length` bytes at `offset`; may return fewer at the end of the file. */
export type ElfReader = (offset: number, length: number) => Promise<Buffer>;

export interface ParseElfOptions {
  /** The first bytes of the file when the caller already has them (saves a read). */
  head?: Buffer;
}

const MAX_PHNUM = 4096;
const MAX_SHNUM = 65536;
const MAX_DYN_ENTRIES = 65536;
const MAX_NEEDED = 4096;
const MAX_STRING = 4096;
/** Bytes of the string table read in one go; strings past it are read one by one. */
const STRTAB_CHUNK = 256 * 1024;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const SHT_DYNAMIC = 6;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const PN_XNUM = 0xffff;

const MACHINES: Record<number, string> = {
  2: 'sparc',
  3: 'i386',
  4: 'm68k',
  8: 'mips',
  10: 'mips-rs3-le',
  15: 'parisc',
  18: 'sparc32plus',
  20: 'ppc',
  21: 'ppc64',
  22: 's390',
  40: 'arm',
  42: 'sh',
  43: 'sparcv9',
  50: 'ia64',
  62: 'x86-64',
  183: 'aarch64',
  243: 'riscv',
  247: 'bpf',
  258: 'loongarch',
};

const TYPES: Record<number, ElfFacts['type']> = { 1: 'rel', 2: 'exec', 3: 'dyn', 4: 'core' };

/** True when the buffer starts with "\x7fELF". */
export function isElfMagic(head: Buffer | Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/** Bounds-checked little/big-endian field access over a buffer holding file bytes [base, base+len). */
class View {
  constructor(
    readonly buf: Buffer,
    readonly le: boolean,
    readonly is64: boolean,
  ) {}
  has(off: number, len: number): boolean {
    return off >= 0 && off + len <= this.buf.length;
  }
  u16(off: number): number {
    return this.le ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off);
  }
  u32(off: number): number {
    return this.le ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }
  /** A 64-bit value as a number, or NaN when it does not fit (such offsets can never be valid). */
  u64(off: number): number {
    const v = this.le ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off);
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : NaN;
  }
  /** Address-sized field: 4 bytes for ELFCLASS32, 8 for ELFCLASS64. */
  addr(off: number): number {
    return this.is64 ? this.u64(off) : this.u32(off);
  }
}

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

function splitPathList(s: string): string[] {
  return s.split(':');
}

/** A read the parser needs: `length` bytes at `offset` (already clamped to the file). */
type ReadRequest = [offset: number, length: number];
/** The parser as steps: it yields the reads it needs and is resumed with their bytes. */
type Steps<T> = Generator<ReadRequest, T, Buffer>;

/**
 * Parses an ELF file through `read`. Returns undefined when the file is not ELF or its header is
 * unusable (truncated, unknown class or byte order); otherwise the facts it could establish.
 */
export async function parseElf(read: ElfReader, size: number, options: ParseElfOptions = {}): Promise<ElfFacts | undefined> {
  const steps = elfSteps(size, options.head);
  for (let r = steps.next(); ; ) {
    if (r.done) return r.value;
    const [offset, length] = r.value;
    const b = await read(offset, length);
    r = steps.next(b.length > length ? b.subarray(0, length) : b);
  }
}

/**
 * parseElf over a whole file in memory, synchronously: what a blob writer thread runs on the
 * contents it has just read (PutLocalOptions.inspectModule names it through ELF_INSPECTOR).
 */
export function parseElfBuffer(content: Buffer | Uint8Array): ElfFacts | undefined {
  const buf = Buffer.isBuffer(content) ? content : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  const steps = elfSteps(buf.length, buf);
  for (let r = steps.next(); ; ) {
    if (r.done) return r.value;
    const [offset, length] = r.value;
    r = steps.next(buf.subarray(offset, offset + length));
  }
}

/** parseElfBuffer as a module export a writer thread can load. */
export const ELF_INSPECTOR = { url: import.meta.url, name: 'parseElfBuffer' } as const;

function* elfSteps(size: number, head: Buffer | undefined): Steps<ElfFacts | undefined> {
  if (!Number.isSafeInteger(size) || size < 16) return undefined;
  // Reads clamped to the file; a reader returning fewer bytes than asked is handled by the caller.
  function* readAt(offset: number, length: number): Steps<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset >= size || !(length > 0)) return Buffer.alloc(0);
    const len = Math.min(length, size - offset);
    if (head && offset + len <= head.length) return head.subarray(offset, offset + len);
    return yield [offset, len];
  }
  const ident = yield* readAt(0, 64);
  if (ident.length < 16 || !isElfMagic(ident)) return undefined;
  const cls = ident[4];
  const data = ident[5];
  if ((cls !== 1 && cls !== 2) || (data !== 1 && data !== 2)) return undefined;
  const is64 = cls === 2;
  const ehsize = is64 ? 64 : 52;
  if (ident.length < ehsize) return undefined;
  const h = new View(ident, data === 1, is64);

  const eType = h.u16(16);
  const eMachine = h.u16(18);
  const facts: ElfFacts = {
    class: is64 ? 64 : 32,
    endian: data === 1 ? 'le' : 'be',
    machine: MACHINES[eMachine] ?? `em-${eMachine}`,
    type: TYPES[eType] ?? 'other',
    needed: [],
  };

  const phoff = h.addr(is64 ? 32 : 28);
  const shoff = h.addr(is64 ? 40 : 32);
  const phentsize = h.u16(is64 ? 54 : 42);
  let phnum = h.u16(is64 ? 56 : 44);
  const shentsize = h.u16(is64 ? 58 : 46);
  const shnum = h.u16(is64 ? 60 : 48);
  const phMin = is64 ? 56 : 32;
  const shMin = is64 ? 64 : 40;

  if (phnum === PN_XNUM && shentsize >= shMin && shoff > 0) {
    // More program headers than fit in e_phnum: the real count is section header 0's sh_info.
    const sh0 = yield* readAt(shoff, shMin);
    if (sh0.length >= shMin) phnum = new View(sh0, h.le, is64).u32(is64 ? 44 : 28);
  }
  if (phnum === 0 || phentsize < phMin || !(phoff > 0)) return facts;
  phnum = Math.min(phnum, MAX_PHNUM, Math.floor((size - phoff) / phentsize));
  if (!(phnum > 0)) return facts;

  const phBuf = yield* readAt(phoff, phnum * phentsize);
  const ph = new View(phBuf, h.le, is64);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    if (!ph.has(o, phMin)) break;
    const type = ph.u32(o);
    const seg: Segment = is64
      ? { type, offset: ph.u64(o + 8), vaddr: ph.u64(o + 16), filesz: ph.u64(o + 32) }
      : { type, offset: ph.u32(o + 4), vaddr: ph.u32(o + 8), filesz: ph.u32(o + 16) };
    segments.push(seg);
  }

  const interpSeg = segments.find((s) => s.type === PT_INTERP);
  if (interpSeg && interpSeg.filesz > 0) {
    const b = yield* readAt(interpSeg.offset, Math.min(interpSeg.filesz, MAX_STRING));
    const nul = b.indexOf(0);
    const s = (nul === -1 ? b : b.subarray(0, nul)).toString('utf8');
    if (s !== '') facts.interp = s;
  }

  const dynSeg = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dynSeg) return facts;
  const entSize = is64 ? 16 : 8;
  const dynCount = Math.min(Math.floor(dynSeg.filesz / entSize), MAX_DYN_ENTRIES);
  if (!(dynCount > 0)) return facts;
  const dynBuf = yield* readAt(dynSeg.offset, dynCount * entSize);
  const dyn = new View(dynBuf, h.le, is64);

  const needed: number[] = [];
  let strtab: number | undefined;
  let strsz: number | undefined;
  let soname: number | undefined;
  let rpath: number | undefined;
  let runpath: number | undefined;
  for (let o = 0; dyn.has(o, entSize); o += entSize) {
    // Tags are signed but every tag read here is small, so the low word alone (or NaN) is enough.
    const tag = is64 ? dyn.u64(o) : dyn.u32(o);
    const val = is64 ? dyn.u64(o + 8) : dyn.u32(o + 4);
    if (tag === DT_NULL) break;
    if (Number.isNaN(val)) continue;
    if (tag === DT_NEEDED) {
      if (needed.length < MAX_NEEDED) needed.push(val);
    } else if (tag === DT_STRTAB) strtab ??= val;
    else if (tag === DT_STRSZ) strsz ??= val;
    else if (tag === DT_SONAME) soname ??= val;
    else if (tag === DT_RPATH) rpath ??= val;
    else if (tag === DT_RUNPATH) runpath ??= val;
  }
  if (strtab === undefined) return facts;

  let strOff = vaddrToOffset(segments, strtab);
  if (strOff === undefined) strOff = yield* strtabFromSections(readAt, h, shoff, shentsize, shnum, shMin, strtab);
  if (strOff === undefined || strOff >= size) return facts;

  const wanted = [...needed, soname, rpath, runpath].filter((v): v is number => v !== undefined);
  if (wanted.length === 0) return facts;
  const maxWanted = Math.max(...wanted);
  const chunkLen = Math.min(STRTAB_CHUNK, strsz !== undefined && strsz > 0 ? strsz : maxWanted + MAX_STRING, size - strOff);
  const chunk = yield* readAt(strOff, chunkLen);
  const base = strOff;

  function* str(index: number): Steps<string | undefined> {
    if (strsz !== undefined && strsz > 0 && index >= strsz) return undefined;
    let bytes: Buffer;
    if (index < chunk.length) {
      const nul = chunk.indexOf(0, index);
      if (nul !== -1) return chunk.toString('utf8', index, nul);
      bytes = index + MAX_STRING <= chunk.length ? chunk.subarray(index) : yield* readAt(base + index, MAX_STRING);
    } else bytes = yield* readAt(base + index, MAX_STRING);
    const nul = bytes.indexOf(0);
    // No terminator within reach: a corrupt table, not a name.
    return nul === -1 ? undefined : bytes.toString('utf8', 0, nul);
  }

  for (const n of needed) {
    const s = yield* str(n);
    if (s !== undefined && s !== '') facts.needed.push(s);
  }
  if (soname !== undefined) {
    const s = yield* str(soname);
    if (s !== undefined && s !== '') facts.soname = s;
  }
  if (runpath !== undefined) {
    const s = yield* str(runpath);
    if (s !== undefined) facts.runpath = splitPathList(s);
  }
  if (rpath !== undefined) {
    const s = yield* str(rpath);
    if (s !== undefined) facts.rpath = splitPathList(s);
  }
  return facts;
}

function vaddrToOffset(segments: Segment[], vaddr: number): number | undefined {
  for (const s of segments) {
    if (s.type !== PT_LOAD || Number.isNaN(s.vaddr) || Number.isNaN(s.offset)) continue;
    if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) return s.offset + (vaddr - s.vaddr);
  }
  return undefined;
}

/**
 * Fallback when DT_STRTAB lies in no PT_LOAD segment (odd linkers, stripped segment tables): the
 * section linked from the SHT_DYNAMIC section, if its address matches.
 */
function* strtabFromSections(
  readAt: (offset: number, length: number) => Steps<Buffer>,
  h: View,
  shoff: number,
  shentsize: number,
  shnum: number,
  shMin: number,
  strtab: number,
): Steps<number | undefined> {
  if (!(shoff > 0) || shentsize < shMin || shnum === 0) return undefined;
  const count = Math.min(shnum, MAX_SHNUM);
  const buf = yield* readAt(shoff, count * shentsize);
  const sh = new View(buf, h.le, h.is64);
  const is64 = h.is64;
  const section = (i: number) => {
    const o = i * shentsize;
    if (!sh.has(o, shMin)) return undefined;
    return {
      type: sh.u32(o + 4),
      addr: sh.addr(o + (is64 ? 16 : 12)),
      offset: sh.addr(o + (is64 ? 24 : 16)),
      link: sh.u32(o + (is64 ? 40 : 24)),
    };
  };
  for (let i = 0; i < count; i++) {
    const s = section(i);
    if (!s) break;
    if (s.type !== SHT_DYNAMIC) continue;
    const str = section(s.link);
    if (str && str.addr === strtab && !Number.isNaN(str.offset)) return str.offset;
  }
  return undefined;
}
