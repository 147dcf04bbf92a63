import { readFile, rm, writeFile } from 'node:fs/promises';
import { InputError } from '../../lib/errors.js';
import { requireTool, runTool } from '../../lib/exec.js';
import { parseElf } from '../analyze/elf.js';
import { writeCpio, type CpioMember } from './cpio.js';
import { initramfsInit } from './init-scripts.js';
import type { BootKernel } from './kernel.js';
import { moduleClosure } from './modules.js';

export interface InitramfsRequest {
  kernel: BootKernel;
  /** Modules wanted (platform list and extras); their dependencies are added. */
  modules: readonly string[];
  /** Init to switch to in the root filesystem ("/.aim/init", "/sbin/init"). */
  init: string;
  /** Time of every member (reproducible builds). */
  mtime: number;
}

export interface InitramfsResult {
  /** The zstd-compressed newc archive. */
  path: string;
  /** Modules loaded at boot, in order. */
  modules: string[];
  /** Wanted modules that the kernel has built in. */
  builtin: string[];
  /** Size before compression. */
  cpioBytes: number;
}

/**
 * A statically linked busybox from the machine (Debian's busybox-static): the initramfs and aim's
 * init in the root run it, so it must need no shared libraries.
 */
export async function staticBusybox(): Promise<Buffer> {
  const path = requireTool('busybox');
  const bytes = await readFile(path);
  const elf = await parseElf(async (offset, length) => bytes.subarray(offset, offset + length), bytes.length);
  if (!elf || elf.interp !== undefined) {
    throw new InputError('E_BUSYBOX_NOT_STATIC', `${path} is not a statically linked busybox`, { hint: 'apt-get install busybox-static' });
  }
  return bytes;
}

/** Members every initramfs holds besides the modules. */
function baseMembers(busybox: Buffer, init: string, moduleList: string): CpioMember[] {
  const dir = (name: string): CpioMember => ({ name, type: 'dir', mode: 0o755 });
  return [
    dir('bin'),
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: busybox },
    { name: 'init', type: 'file', mode: 0o755, data: Buffer.from(initramfsInit()) },
    dir('dev'),
    { name: 'dev/console', type: 'char', mode: 0o600, rdevMajor: 5, rdevMinor: 1 },
    { name: 'dev/null', type: 'char', mode: 0o666, rdevMajor: 1, rdevMinor: 3 },
    dir('etc'),
    dir('etc/aim'),
    { name: 'etc/aim/init', type: 'file', mode: 0o644, data: Buffer.from(`${init}\n`) },
    { name: 'etc/aim/modules', type: 'file', mode: 0o644, data: Buffer.from(moduleList) },
    dir('lib'),
    dir('newroot'),
    dir('proc'),
    dir('sys'),
  ];
}

/**
 * Writes a minimal initramfs to `out`: busybox, aim's /init, and only the kernel modules the
 * request needs with their dependencies. Deterministic: the same inputs give the same bytes.
 */
export async function buildInitramfs(request: InitramfsRequest, out: string): Promise<InitramfsResult> {
  requireTool('zstd');
  const closure = moduleClosure(request.kernel.index, request.modules);
  const busybox = await staticBusybox();
  const version = request.kernel.version;
  const members = baseMembers(busybox, request.init, closure.load.map((m) => `${version}/${m.path}\n`).join(''));
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
    members.push({ name, type: 'file', mode: 0o644, data: await request.kernel.readModule(m.path) });
  }
  const cpio = writeCpio(members, request.mtime);
  const raw = `${out}.cpio`;
  await writeFile(raw, cpio);
  await runTool('zstd', ['-q', '-19', '-T1', '--no-progress', '-f', raw, '-o', out]);
  await rm(raw, { force: true });
  return { path: out, modules: closure.load.map((m) => m.name), builtin: closure.builtin, cpioBytes: cpio.length };
}
