import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { InputError } from '../../lib/errors.js';
import { writeNewFile } from '../../lib/fs.js';
import { requireTool } from '../../lib/exec.js';
import { parseElf } from '../analyze/elf.js';
import { bufferContent, fileContent, type ContentSource } from './content.js';
import { cpioChunks, cpioKey, cpioLength, sortedCpioRecords, type CpioMember, type CpioRecord } from './cpio.js';
import { initramfsInit } from './init-scripts.js';
import type { BootKernel } from './kernel.js';
import { moduleClosure } from './modules.js';
import { zstdFrame } from './zstd.js';

export interface InitramfsRequest {
  kernel: BootKernel;
  /** Modules wanted (platform list and extras); their dependencies are added. */
  modules: readonly string[];
  /** Init to switch to in the root filesystem ("/.aim/init", "/sbin/init"). */
  init: string;
  /** Time of every member (reproducible builds). */
  mtime: number;
}

/** aim's core initramfs, laid out: what it holds and its exact size, before any byte is read. */
export interface Initramfs {
  /** Modules loaded at boot, in order. */
  modules: string[];
  /** Wanted modules that the kernel has built in. */
  builtin: string[];
  /** Size of the newc archive before compression. */
  cpioBytes: number;
  /** Equal for equal archives (cpioKey): names, metadata and content ids, no content read. */
  key: string;
  /** The newc archive; busybox and the modules are read as they are written. */
  cpio(signal?: AbortSignal): AsyncGenerator<Buffer>;
  /** The archive as aim writes it: one zstd frame, level 19, one thread. */
  compressed(signal?: AbortSignal): AsyncGenerator<Buffer>;
}

export interface InitramfsResult {
  /** The zstd-compressed newc archive. */
  path: string;
  modules: string[];
  builtin: string[];
  cpioBytes: number;
}

/** zstd level of the core initramfs: small, compressed once per build. */
export const INITRAMFS_ZSTD_LEVEL = 19;

/**
 * A statically linked busybox from the machine (Debian's busybox-static): the initramfs and aim's
 * init in the root run it, so it must need no shared libraries. Checked by reading its ELF
 * headers, hashed as a stream; its content is read again when an archive writes it.
 */
export async function staticBusybox(): Promise<ContentSource> {
  const path = requireTool('busybox');
  const fh = await open(path, 'r');
  let size: number;
  try {
    size = (await fh.stat()).size;
    const elf = await parseElf(async (offset, length) => {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    }, size);
    if (!elf || elf.interp !== undefined) {
      throw new InputError('E_BUSYBOX_NOT_STATIC', `${path} is not a statically linked busybox`, { hint: 'apt-get install busybox-static' });
    }
  } finally {
    await fh.close();
  }
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return fileContent(path, size, hash.digest('hex'));
}

/** Members every initramfs holds besides the modules. */
function baseMembers(busybox: ContentSource, init: string, moduleList: string): CpioMember[] {
  const dir = (name: string): CpioMember => ({ name, type: 'dir', mode: 0o755 });
  const text = (s: string) => bufferContent(Buffer.from(s));
  return [
    dir('bin'),
    { name: 'bin/busybox', type: 'file', mode: 0o755, content: busybox },
    { name: 'init', type: 'file', mode: 0o755, content: text(initramfsInit()) },
    dir('dev'),
    { name: 'dev/console', type: 'char', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { name: 'dev/null', type: 'char', mode: 0o666, rdevMajor: 1, rdevMinor: 3 },
    dir('etc'),
    dir('etc/aim'),
    { name: 'etc/aim/init', type: 'file', mode: 0o644, content: text(`${init}\n`) },
    { name: 'etc/aim/modules', type: 'file', mode: 0o644, content: text(moduleList) },
    dir('lib'),
    dir('newroot'),
    dir('proc'),
    dir('sys'),
  ];
}

/**
 * A minimal initramfs, laid out: busybox, aim's /init, and only the kernel modules the request
 * needs with their dependencies. Deterministic: the same inputs give the same bytes.
 */
export async function planInitramfs(request: InitramfsRequest): Promise<Initramfs> {
  requireTool('zstd');
  const closure = moduleClosure(request.kernel.index, request.modules);
  const version = request.kernel.version;
  const members = baseMembers(await staticBusybox(), request.init, closure.load.map((m) => `${version}/${m.path}\n`).join(''));
  const dirs = new Set(['lib']);
  for (const m of closure.load) {
    const name = `lib/modules/${version}/${m.path}`;
    const parts = name.split('/');
    for (let i = 2; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!dirs.has(d)) {
        dirs.add(d);
        members.push({ name: d, type: 'dir', mode: 0o755 });
      }
    }
    members.push({ name, type: 'file', mode: 0o644, content: request.kernel.module(m.path) });
  }
  const records: CpioRecord[] = sortedCpioRecords(members);
  const cpioBytes = cpioLength(records);
  const cpio = (signal?: AbortSignal) => cpioChunks(records, request.mtime, signal);
  return {
    modules: closure.load.map((m) => m.name),
    builtin: closure.builtin,
    cpioBytes,
    key: cpioKey(records, request.mtime),
    cpio,
    compressed: (signal) => zstdFrame(cpio(signal), cpioBytes, INITRAMFS_ZSTD_LEVEL, signal),
  };
}

/** Writes the compressed initramfs to `out` (a new file, removed again on failure or abort). */
export async function buildInitramfs(request: InitramfsRequest, out: string, signal?: AbortSignal): Promise<InitramfsResult> {
  const initramfs = await planInitramfs(request);
  await writeNewFile(initramfs.compressed(signal), out, signal);
  return { path: out, modules: initramfs.modules, builtin: initramfs.builtin, cpioBytes: initramfs.cpioBytes };
}
