import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isElfMagic, parseElf } from '../../src/core/analyze/elf.js';
import type { ElfFacts } from '../../src/core/analyze/elf.js';

function hasTool(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const HAS_READELF = hasTool('readelf');
const HAS_AS_LD = hasTool('as') && hasTool('ld');

/** A reader over a buffer that fails the test on any read outside the file. */
function bufferReader(buf: Buffer) {
  const calls: [number, number][] = [];
  const read = async (offset: number, length: number) => {
    calls.push([offset, length]);
    if (!(offset >= 0 && length > 0 && offset + length <= buf.length)) throw new Error(`out of bounds read ${offset}+${length} of ${buf.length}`);
    return buf.subarray(offset, offset + length);
  };
  return { read, calls };
}

async function parseBuffer(buf: Buffer): Promise<ElfFacts | undefined> {
  return parseElf(bufferReader(buf).read, buf.length);
}

const READELF_MACHINES: Record<string, string> = {
  'Advanced Micro Devices X86-64': 'x86-64',
  'Intel 80386': 'i386',
  AArch64: 'aarch64',
};

/** What readelf says about a file, in ElfFacts form. */
function readelfFacts(path: string): ElfFacts {
  const out = execFileSync('readelf', ['-hldW', path], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(.*)$`, 'm').exec(out)?.[1]?.trim() ?? '';
  const type = field('Type').split(' ')[0]!;
  const facts: ElfFacts = {
    class: field('Class') === 'ELF64' ? 64 : 32,
    endian: field('Data').includes('little') ? 'le' : 'be',
    machine: READELF_MACHINES[field('Machine')] ?? field('Machine'),
    type: ({ EXEC: 'exec', DYN: 'dyn', REL: 'rel', CORE: 'core' } as const)[type as 'EXEC'] ?? 'other',
    needed: [...out.matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1]!),
  };
  const interp = /\[Requesting program interpreter: (.*)\]/.exec(out)?.[1];
  if (interp) facts.interp = interp;
  const soname = /\(SONAME\)\s+Library soname: \[(.*)\]/.exec(out)?.[1];
  if (soname !== undefined) facts.soname = soname;
  const runpath = /\(RUNPATH\)\s+Library runpath: \[(.*)\]/.exec(out)?.[1];
  if (runpath !== undefined) facts.runpath = runpath.split(':');
  const rpath = /\(RPATH\)\s+Library rpath: \[(.*)\]/.exec(out)?.[1];
  if (rpath !== undefined) facts.rpath = rpath.split(':');
  return facts;
}

const tmp = mkdtempSync(join(tmpdir(), 'aim-analyze-elf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface BuildSpec {
  cls: 32 | 64;
  endian: 'le' | 'be';
  machine: number;
  type: number;
  interp?: string;
  needed?: string[];
  soname?: string;
  runpath?: string;
  rpath?: string;
}

/** Hand-built minimal ELF: header, PT_LOAD over the whole file, PT_INTERP, PT_DYNAMIC, .dynstr. */
function buildElf(spec: BuildSpec): Buffer {
  const is64 = spec.cls === 64;
  const le = spec.endian === 'le';
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const dynent = is64 ? 16 : 8;
  const base = 0x400000;
  const phnum = spec.interp ? 3 : 2;
  const strs: string[] = [];
  const strOff = new Map<string, number>();
  let strLen = 1;
  const intern = (s: string) => {
    if (!strOff.has(s)) {
      strOff.set(s, strLen);
      strs.push(s);
      strLen += Buffer.byteLength(s) + 1;
    }
    return strOff.get(s)!;
  };
  const dyn: [number, number][] = [];
  for (const n of spec.needed ?? []) dyn.push([1, intern(n)]);
  if (spec.soname) dyn.push([14, intern(spec.soname)]);
  if (spec.runpath !== undefined) dyn.push([29, intern(spec.runpath)]);
  if (spec.rpath !== undefined) dyn.push([15, intern(spec.rpath)]);
  const interpOff = ehsize + phnum * phentsize;
  const interpLen = spec.interp ? Buffer.byteLength(spec.interp) + 1 : 0;
  const strtabOff = interpOff + interpLen;
  const dynOff = Math.ceil((strtabOff + strLen) / 8) * 8;
  dyn.push([5, base + strtabOff], [10, strLen], [0, 0]);
  const size = dynOff + dyn.length * dynent;
  const b = Buffer.alloc(size);
  const u16 = (o: number, v: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  const u32 = (o: number, v: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
  const u64 = (o: number, v: number) => (le ? b.writeBigUInt64LE(BigInt(v), o) : b.writeBigUInt64BE(BigInt(v), o));
  const addr = (o: number, v: number) => (is64 ? u64(o, v) : u32(o, v));
  b.write('\x7fELF', 0, 'latin1');
  b[4] = is64 ? 2 : 1;
  b[5] = le ? 1 : 2;
  b[6] = 1;
  u16(16, spec.type);
  u16(18, spec.machine);
  u32(20, 1);
  addr(is64 ? 32 : 28, ehsize); // e_phoff
  u16(is64 ? 52 : 40, ehsize);
  u16(is64 ? 54 : 42, phentsize);
  u16(is64 ? 56 : 44, phnum);
  const ph = (i: number, type: number, offset: number, filesz: number) => {
    const o = ehsize + i * phentsize;
    u32(o, type);
    if (is64) {
      u64(o + 8, offset);
      u64(o + 16, base + offset);
      u64(o + 32, filesz);
      u64(o + 40, filesz);
    } else {
      u32(o + 4, offset);
      u32(o + 8, base + offset);
      u32(o + 16, filesz);
      u32(o + 20, filesz);
    }
  };
  let i = 0;
  if (spec.interp) ph(i++, 3, interpOff, interpLen);
  ph(i++, 1, 0, size);
  ph(i++, 2, dynOff, dyn.length * dynent);
  if (spec.interp) b.write(spec.interp, interpOff, 'utf8');
  let o = strtabOff + 1;
  for (const s of strs) {
    b.write(s, o, 'utf8');
    o += Buffer.byteLength(s) + 1;
  }
  dyn.forEach(([tag, val], k) => {
    addr(dynOff + k * dynent, tag);
    addr(dynOff + k * dynent + (is64 ? 8 : 4), val);
  });
  return b;
}

/** Deterministic PRNG so fuzz failures reproduce. */
function mulberry32(seed: number) {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REAL = [
  '/usr/bin/ls',
  '/lib/x86_64-linux-gnu/libc.so.6',
  '/lib64/ld-linux-x86-64.so.2',
  '/usr/bin/expr',
  '/usr/sbin/ldconfig',
  '/usr/bin/jar',
].filter((p) => existsSync(p));

describe('isElfMagic', () => {
  it('accepts the magic and rejects anything else', () => {
    expect(isElfMagic(Buffer.from('\x7fELF\x02\x01', 'latin1'))).toBe(true);
    expect(isElfMagic(Buffer.from('\x7fELF', 'latin1'))).toBe(true);
    expect(isElfMagic(Buffer.from('\x7fEL', 'latin1'))).toBe(false);
    expect(isElfMagic(Buffer.from('#!/bin/sh\n'))).toBe(false);
    expect(isElfMagic(Buffer.alloc(0))).toBe(false);
  });
});

describe.skipIf(!HAS_READELF)('parseElf on real binaries, checked against readelf', () => {
  it.each(REAL)('%s', async (path) => {
    const buf = readFileSync(path);
    const { read, calls } = bufferReader(buf);
    const facts = await parseElf(read, buf.length);
    expect(facts).toEqual(readelfFacts(path));
    // A handful of reads, not a scan of the file.
    expect(calls.length).toBeLessThanOrEqual(6);
  });

  it('has the facts everyone knows about ls and libc', async () => {
    const ls = await parseBuffer(readFileSync('/usr/bin/ls'));
    expect(ls).toMatchObject({ class: 64, endian: 'le', machine: 'x86-64', interp: '/lib64/ld-linux-x86-64.so.2' });
    expect(ls!.needed).toContain('libc.so.6');
    const libc = await parseBuffer(readFileSync('/lib/x86_64-linux-gnu/libc.so.6'));
    expect(libc).toMatchObject({ type: 'dyn', soname: 'libc.so.6' });
    expect(libc!.needed).toContain('ld-linux-x86-64.so.2');
  });

  it('agrees with readelf on the first 150 ELF files of /usr/bin', async () => {
    let checked = 0;
    for (const name of readdirSync('/usr/bin').sort()) {
      if (checked >= 150) break;
      const path = join('/usr/bin', name);
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st?.isFile() || st.size < 64) continue;
      const buf = readFileSync(path);
      if (!isElfMagic(buf)) continue;
      expect({ path, facts: await parseBuffer(buf) }).toEqual({ path, facts: readelfFacts(path) });
      checked++;
    }
    expect(checked).toBeGreaterThan(50);
  });

  it.skipIf(!HAS_AS_LD)('reads a 32-bit executable and library made with as and ld', async () => {
    writeFileSync(join(tmp, 'a.s'), '.globl _start\n.text\n_start:\n ret\n');
    const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: tmp, stdio: 'pipe' });
    run('as', ['--32', '-o', 'a.o', 'a.s']);
    run('ld', ['-m', 'elf_i386', '-shared', '-soname', 'libdep.so.7', '-o', 'libdep.so', 'a.o']);
    run('ld', ['-m', 'elf_i386', '-pie', '--dynamic-linker', '/lib/ld-linux.so.2', '-rpath', '/opt/x/lib:$ORIGIN', '--disable-new-dtags', '-o', 'prog', 'a.o', 'libdep.so']);
    run('ld', ['-m', 'elf_i386', '-shared', '-soname', 'libt.so.1', '--enable-new-dtags', '-rpath', '/r1:/r2', '-o', 'libt.so', 'a.o', 'libdep.so']);
    const prog = await parseBuffer(readFileSync(join(tmp, 'prog')));
    expect(prog).toEqual(readelfFacts(join(tmp, 'prog')));
    expect(prog).toEqual({
      class: 32,
      endian: 'le',
      machine: 'i386',
      type: 'dyn',
      interp: '/lib/ld-linux.so.2',
      needed: ['libdep.so.7'],
      rpath: ['/opt/x/lib', '$ORIGIN'],
    });
    const lib = await parseBuffer(readFileSync(join(tmp, 'libt.so')));
    expect(lib).toEqual(readelfFacts(join(tmp, 'libt.so')));
    expect(lib).toMatchObject({ soname: 'libt.so.1', runpath: ['/r1', '/r2'], needed: ['libdep.so.7'] });
  });
});

describe('parseElf on hand-built headers', () => {
  const cases: [string, BuildSpec, Partial<ElfFacts>][] = [
    [
      '32-bit little-endian i386 executable',
      { cls: 32, endian: 'le', machine: 3, type: 2, interp: '/lib/ld-linux.so.2', needed: ['libc.so.6', 'libm.so.6'] },
      { class: 32, endian: 'le', machine: 'i386', type: 'exec', interp: '/lib/ld-linux.so.2', needed: ['libc.so.6', 'libm.so.6'] },
    ],
    [
      '32-bit big-endian ppc library',
      { cls: 32, endian: 'be', machine: 20, type: 3, soname: 'libx.so.2', needed: ['libc.so.6'], runpath: '/a:/b' },
      { class: 32, endian: 'be', machine: 'ppc', type: 'dyn', soname: 'libx.so.2', needed: ['libc.so.6'], runpath: ['/a', '/b'] },
    ],
    [
      '64-bit big-endian s390 with rpath',
      { cls: 64, endian: 'be', machine: 22, type: 3, interp: '/lib/ld64.so.1', needed: ['libz.so.1'], rpath: '$ORIGIN/../lib' },
      { class: 64, endian: 'be', machine: 's390', type: 'dyn', interp: '/lib/ld64.so.1', needed: ['libz.so.1'], rpath: ['$ORIGIN/../lib'] },
    ],
    [
      '64-bit aarch64 executable, NEEDED order kept',
      { cls: 64, endian: 'le', machine: 183, type: 2, needed: ['libb.so', 'liba.so', 'libc.so'] },
      { class: 64, machine: 'aarch64', type: 'exec', needed: ['libb.so', 'liba.so', 'libc.so'] },
    ],
    ['unknown machine and type', { cls: 64, endian: 'le', machine: 9999, type: 0xfe00 }, { machine: 'em-9999', type: 'other', needed: [] }],
    ['relocatable object without segments', { cls: 64, endian: 'le', machine: 62, type: 1 }, { type: 'rel', needed: [] }],
  ];
  it.each(cases)('%s', async (_name, spec, expected) => {
    const facts = await parseBuffer(buildElf(spec));
    expect(facts).toMatchObject(expected);
    if (!spec.interp) expect(facts!.interp).toBeUndefined();
    if (!spec.soname) expect(facts!.soname).toBeUndefined();
  });

  it.skipIf(!HAS_READELF)('hand-built files are what readelf sees too', async () => {
    const spec: BuildSpec = { cls: 32, endian: 'be', machine: 20, type: 3, soname: 'libx.so.2', needed: ['libc.so.6'], runpath: '/a:/b' };
    const path = join(tmp, 'be32.so');
    writeFileSync(path, buildElf(spec));
    const facts = readelfFacts(path);
    expect({ ...facts, machine: 'ppc' }).toEqual(await parseBuffer(buildElf(spec)));
  });

  it('uses the head the caller already read instead of reading again', async () => {
    const buf = buildElf({ cls: 64, endian: 'le', machine: 62, type: 3, needed: ['libc.so.6'] });
    const { read, calls } = bufferReader(buf);
    const facts = await parseElf(read, buf.length, { head: buf });
    expect(facts?.needed).toEqual(['libc.so.6']);
    expect(calls).toEqual([]);
  });
});

describe('parseElf on garbage', () => {
  it('returns undefined for non-ELF and unusable headers', async () => {
    expect(await parseBuffer(Buffer.from('#!/bin/sh\necho hi\n'))).toBeUndefined();
    expect(await parseBuffer(Buffer.alloc(0))).toBeUndefined();
    expect(await parseBuffer(Buffer.from('\x7fELF', 'latin1'))).toBeUndefined();
    const badClass = buildElf({ cls: 64, endian: 'le', machine: 62, type: 2 });
    badClass[4] = 7;
    expect(await parseBuffer(badClass)).toBeUndefined();
    const badData = buildElf({ cls: 64, endian: 'le', machine: 62, type: 2 });
    badData[5] = 0;
    expect(await parseBuffer(badData)).toBeUndefined();
  });

  it('gives partial facts for truncated binaries and never reads past the end', async () => {
    const ls = readFileSync('/usr/bin/ls');
    for (const n of [10, 17, 40, 52, 63, 64, 100, 300, 1000, 5000, Math.floor(ls.length / 2), ls.length - 1]) {
      const facts = await parseBuffer(ls.subarray(0, n));
      if (n < 64) expect(facts).toBeUndefined();
      else expect(facts).toMatchObject({ class: 64, machine: 'x86-64' });
    }
    // Headers complete but the dynamic section cut off: header facts stay.
    const half = await parseBuffer(ls.subarray(0, 4096));
    expect(half?.interp).toBe('/lib64/ld-linux-x86-64.so.2');
  });

  it('caps absurd counts and ignores wild offsets', async () => {
    const b = buildElf({ cls: 64, endian: 'le', machine: 62, type: 3, needed: ['libc.so.6'] });
    const huge = Buffer.from(b);
    huge.writeUInt16LE(0xffff, 56); // e_phnum = PN_XNUM with no section headers
    expect(await parseBuffer(huge)).toMatchObject({ machine: 'x86-64' });
    const far = Buffer.from(b);
    far.writeBigUInt64LE(0xffffffffffff0000n, 32); // e_phoff beyond any file
    expect(await parseBuffer(far)).toMatchObject({ needed: [] });
    const bigEnt = Buffer.from(b);
    bigEnt.writeUInt16LE(0xfff0, 54); // e_phentsize
    expect(await parseBuffer(bigEnt)).toMatchObject({ needed: [] });
  });

  it('skips DT_NEEDED strings outside the string table', async () => {
    const b = buildElf({ cls: 64, endian: 'le', machine: 62, type: 3, needed: ['libok.so', 'libbad.so'] });
    // Second dynamic entry is the second NEEDED: point it far outside the file.
    const dynOff = Number(b.readBigUInt64LE(64 + 56 * 1 + 8));
    b.writeBigUInt64LE(0x7fffffffn, dynOff + 16 + 8);
    expect((await parseBuffer(b))?.needed).toEqual(['libok.so']);
  });

  it('survives random corruption of real binaries without throwing or reading out of bounds', async () => {
    const rand = mulberry32(42);
    const sources = ['/usr/bin/ls', '/lib/x86_64-linux-gnu/libc.so.6'].map((p) => readFileSync(p));
    let parsed = 0;
    for (let iter = 0; iter < 400; iter++) {
      const src = sources[iter % sources.length]!;
      const len = iter % 5 === 0 ? Math.floor(rand() * src.length) : src.length;
      const buf = Buffer.from(src.subarray(0, len));
      const flips = 1 + Math.floor(rand() * 20);
      for (let k = 0; k < flips; k++) {
        // Corrupt mostly the headers, where the offsets live.
        const at = Math.floor(rand() * Math.min(buf.length, rand() < 0.7 ? 1024 : buf.length));
        buf[at] = Math.floor(rand() * 256);
      }
      const facts = await parseBuffer(buf);
      if (facts) {
        parsed++;
        expect(Array.isArray(facts.needed)).toBe(true);
        expect(facts.needed.length).toBeLessThanOrEqual(4096);
      }
    }
    expect(parsed).toBeGreaterThan(0);
  });

  it('survives pure noise behind the magic', async () => {
    const rand = mulberry32(7);
    for (let iter = 0; iter < 300; iter++) {
      const buf = Buffer.alloc(64 + Math.floor(rand() * 4000));
      for (let k = 0; k < buf.length; k++) buf[k] = Math.floor(rand() * 256);
      buf.write('\x7fELF', 0, 'latin1');
      buf[4] = 1 + (iter % 2);
      buf[5] = 1 + ((iter >> 1) % 2);
      await expect(parseBuffer(buf)).resolves.toSatisfy((f: ElfFacts | undefined) => f === undefined || Array.isArray(f.needed));
    }
  });
});
