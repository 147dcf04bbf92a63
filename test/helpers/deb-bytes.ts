import { execa } from 'execa';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { archive, file } from './hostile/tar-bytes.js';

/**
 * Debian packages for tests: real ones built with dpkg-deb from a small tree, and hand-made ar
 * archives for inputs dpkg-deb never writes (members out of order, lying sizes, hostile names).
 */

/** An ar archive, byte by byte: each member a 60-byte header and its data padded to an even length. */
export function arArchive(members: { name: string; data: Buffer; size?: string }[]): Buffer {
  const parts: Buffer[] = [Buffer.from('!<arch>\n', 'latin1')];
  for (const m of members) {
    const h = Buffer.alloc(60, 0x20);
    h.write(m.name, 0, 16, 'latin1');
    h.write('0', 16, 12, 'latin1');
    h.write('0', 28, 6, 'latin1');
    h.write('0', 34, 6, 'latin1');
    h.write('100644', 40, 8, 'latin1');
    h.write(m.size ?? String(m.data.length), 48, 10, 'latin1');
    h.write('`\n', 58, 2, 'latin1');
    parts.push(h, m.data);
    if (m.data.length % 2 === 1) parts.push(Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

export const CONTROL = 'Package: hello\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: Test <t@example.org>\nDescription: a test package\n';

/** A hand-made .deb: debian-binary, an uncompressed control.tar and data.tar made of the given members. */
export function handDeb(options: { control?: string; data?: Buffer[]; order?: ('binary' | 'control' | 'data')[]; binary?: string } = {}): Buffer {
  const members = {
    binary: { name: 'debian-binary', data: Buffer.from(options.binary ?? '2.0\n') },
    control: { name: 'control.tar', data: archive(file('./control', options.control ?? CONTROL)) },
    data: { name: 'data.tar', data: archive(...(options.data ?? [file('./usr/bin/hello', '#!/bin/sh\necho hello\n', { mode: 0o755 })])) },
  };
  return arArchive((options.order ?? ['binary', 'control', 'data']).map((k) => members[k]));
}

export interface TreeFile {
  path: string;
  content?: string | Buffer;
  mode?: number;
  symlink?: string;
}

/** Builds a real .deb with dpkg-deb from the given files, control fields and maintainer scripts. */
export async function buildDeb(
  work: string,
  options: { name: string; version: string; arch?: string; source?: string; files: TreeFile[]; scripts?: Record<string, string>; conffiles?: string[]; compress?: 'gzip' | 'xz' | 'zstd' | 'none' },
): Promise<string> {
  const root = join(work, `${options.name}-${options.version}-${options.compress ?? 'xz'}`);
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  const control = [
    `Package: ${options.name}`,
    `Version: ${options.version}`,
    `Architecture: ${options.arch ?? 'amd64'}`,
    ...(options.source ? [`Source: ${options.source}`] : []),
    'Maintainer: Test <test@example.org>',
    'Installed-Size: 12',
    'Description: a package built by aim tests',
  ].join('\n');
  await writeFile(join(root, 'DEBIAN', 'control'), control + '\n');
  for (const [name, text] of Object.entries(options.scripts ?? {})) await writeFile(join(root, 'DEBIAN', name), text, { mode: 0o755 });
  if (options.conffiles) await writeFile(join(root, 'DEBIAN', 'conffiles'), options.conffiles.join('\n') + '\n');
  for (const f of options.files) {
    const p = join(root, f.path);
    await mkdir(dirname(p), { recursive: true });
    if (f.symlink !== undefined) await symlink(f.symlink, p);
    else await writeFile(p, f.content ?? '', { mode: f.mode ?? 0o644 });
  }
  const out = `${root}.deb`;
  await execa('dpkg-deb', ['--root-owner-group', `-Z${options.compress ?? 'xz'}`, '--build', root, out]);
  return out;
}
