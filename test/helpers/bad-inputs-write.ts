/**
 * Hostile images for the write side (issue 10, point 1): images that import cleanly but whose
 * entries try to send what aim writes or reads on the host somewhere else when it builds,
 * exports or materialises them. Each is a tar made with aim's own tar writer (so nothing is
 * normalised on the way), holding a fake kernel (enough for a bootable build to get to its
 * root tree), a static busybox as /bin/sh and /bin/app as the entrypoint, plus the hostile part.
 * The hostile parts point at a sentinel tree the tests check byte for byte afterwards.
 */
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { writeTar, type TarWriteEntry } from '../../src/core/export/tar-writer.js';
import { BASE_MODULES } from '../../src/core/bootable/modules.js';
import { platformModules } from '../../src/core/bootable/platforms.js';

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: 1700000000 };
const file = (name: string, content: string | Buffer, mode = 0o644): TarWriteEntry => {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  return { name: Buffer.from(name), type: 'file', ...meta, mode, size: data.length, content: [data] as unknown as AsyncIterable<Buffer> };
};
const dir = (name: string, mode = 0o755): TarWriteEntry => ({ name: Buffer.from(name), type: 'dir', ...meta, mode });
const symlink = (name: string, target: string): TarWriteEntry => ({ name: Buffer.from(name), type: 'symlink', ...meta, mode: 0o777, linkName: Buffer.from(target) });
const hardlink = (name: string, target: string): TarWriteEntry => ({ name: Buffer.from(name), type: 'hardlink', ...meta, linkName: Buffer.from(target) });

/** Where the hostile links point: paths in the sentinel tree around the test's working directory. */
export interface Sentinel {
  /** A host directory holding an `init` of its own (a link's target that aim must not write into). */
  host: string;
  /** A host file a link names (its content must never enter an artifact or change). */
  secret: string;
  /** A host directory other links name. */
  elsewhere: string;
}

export interface HostileImage {
  name: string;
  /** The hostile entries (after the base image's, so they may replace none of them). */
  entries: (s: Sentinel) => TarWriteEntry[];
  /** With aim's init, a bootable build replaces the image's /.aim (warning) and succeeds. */
  aimDir?: boolean;
  /** Files the built root must hold with this content (paths relative to the root). */
  rootHolds?: Record<string, string>;
  /** The profile sandbox refuses the image before running it: this error code (exit 4). */
  profileRefused?: string;
}

const KERNEL = '9.9.9-aim-test';
const OLD_INIT = '#!/bin/sh\necho old init\n';

/** A kernel that is enough for planning and the initramfs: every module the qemu platform wants is built in. */
function fakeKernel(): TarWriteEntry[] {
  const builtin = [...BASE_MODULES, ...platformModules('qemu')].map((m) => `kernel/drivers/${m}.ko\n`).join('');
  return [
    dir('./boot/'),
    file('./boot/vmlinuz-' + KERNEL, 'not a real kernel\n'),
    dir('./lib/'),
    dir('./lib/modules/'),
    dir(`./lib/modules/${KERNEL}/`),
    file(`./lib/modules/${KERNEL}/modules.dep`, ''),
    file(`./lib/modules/${KERNEL}/modules.builtin`, builtin),
  ];
}

async function base(): Promise<TarWriteEntry[]> {
  return [
    dir('./'),
    dir('./bin/'),
    file('./bin/sh', await readFile('/usr/bin/busybox'), 0o755),
    file('./bin/app', '#!/bin/sh\necho app\n', 0o755),
    ...fakeKernel(),
  ];
}

export const HOSTILE_IMAGES: HostileImage[] = [
  { name: '/.aim is an absolute symlink to a host directory', entries: (s) => [symlink('./.aim', s.host)], aimDir: true },
  { name: '/.aim is a relative symlink climbing out (../..)', entries: () => [symlink('./.aim', '../..')], aimDir: true },
  { name: '/.aim is a relative symlink climbing further (../../..)', entries: () => [symlink('./.aim', '../../..')], aimDir: true },
  { name: '/.aim is a symlink to a missing host directory', entries: (s) => [symlink('./.aim', `${s.elsewhere}/missing/dir`)], aimDir: true },
  { name: '/.aim is a regular file', entries: () => [file('./.aim', 'not a directory\n')], aimDir: true },
  {
    name: '/.aim is a directory of its own (an artifact imported back) with a hard link out of it',
    entries: () => [dir('./.aim/'), file('./.aim/init', OLD_INIT, 0o755), hardlink('./bin/old-init', './.aim/init')],
    aimDir: true,
    rootHolds: { 'bin/old-init': OLD_INIT },
  },
  {
    name: '/etc, /tmp and /run are symlinks to host directories',
    entries: (s) => [symlink('./etc', s.elsewhere), symlink('./tmp', s.host), symlink('./run', '../../..')],
    profileRefused: 'E_PROFILE_ROOT',
  },
  { name: 'a symlink to the host root and a relative one to the host\'s /etc', entries: () => [symlink('./hostroot', '/'), symlink('./hostetc', '../../../../../../../../etc')] },
];

/** Writes the image's tar (base, then the hostile entries) to `path`. */
export async function writeHostileTar(image: HostileImage, sentinel: Sentinel, path: string): Promise<string> {
  const out = createWriteStream(path);
  await writeTar([...(await base()), ...image.entries(sentinel)], out);
  out.end();
  await finished(out);
  return path;
}
