import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BASE_MODULES } from '../../src/core/bootable/modules.js';
import { PLATFORMS, platformModules } from '../../src/core/bootable/platforms.js';
import type { Entry } from '../../src/core/model/entry.js';
import { manifestId, serializeManifest } from '../../src/core/model/manifest.js';
import type { Repository } from '../../src/core/repository/repository.js';

/**
 * A tree that passes for a kernel core: /boot/vmlinuz-<version> (not a real kernel: builds
 * copy it, nothing boots it) and a depmod index declaring every module aim asks for as built in.
 */
export async function writeFakeKernelTree(dir: string, version: string): Promise<string> {
  const modules = join(dir, 'lib', 'modules', version);
  await mkdir(modules, { recursive: true });
  await mkdir(join(dir, 'boot'), { recursive: true });
  await writeFile(join(dir, 'boot', `vmlinuz-${version}`), `not a kernel: ${version}\n`);
  await writeFile(join(modules, 'modules.dep'), '');
  const builtin = new Set([...BASE_MODULES, ...PLATFORMS.flatMap(platformModules)]);
  await writeFile(join(modules, 'modules.builtin'), [...builtin].map((m) => `kernel/builtin/${m}.ko\n`).join(''));
  return dir;
}

export const FAKE_KERNEL_VERSION = '6.1.0-test';
const meta = { uid: 0, gid: 0, mtime: 1_700_000_000 };

/** A regular file entry whose content is stored as a blob of `repo`. */
export async function putFile(repo: Repository, path: string, content: string | Buffer, extra: Partial<Entry> = {}): Promise<Entry> {
  const { hash, size } = await repo.blobs.putBuffer(Buffer.from(content));
  return { path, type: 'file', mode: 0o755, ...meta, size, blob: hash, ...extra };
}

/**
 * Stores an image straight into the catalog that boots with its own fake kernel: /app (an
 * entrypoint), /boot/vmlinuz-<FAKE_KERNEL_VERSION>, a depmod index declaring every module aim asks
 * for built in except one loadable module, "fakemod" (kernel/extra/fakemod.ko), and `extra`.
 * Returns the image id.
 */
export async function addBootableImage(repo: Repository, extra: Entry[] = []): Promise<string> {
  const dir = (path: string): Entry => ({ path, type: 'dir', mode: 0o755, ...meta });
  const v = FAKE_KERNEL_VERSION;
  const builtin = [...new Set([...BASE_MODULES, ...PLATFORMS.flatMap(platformModules)])].map((m) => `kernel/builtin/${m}.ko\n`).join('');
  const entries: Entry[] = [
    dir('/'), await putFile(repo, '/app', '#!/bin/sh\n'), dir('/boot'), await putFile(repo, `/boot/vmlinuz-${v}`, `not a kernel: ${v}\n`),
    dir('/lib'), dir('/lib/modules'), dir(`/lib/modules/${v}`), dir(`/lib/modules/${v}/kernel`), dir(`/lib/modules/${v}/kernel/extra`),
    await putFile(repo, `/lib/modules/${v}/kernel/extra/fakemod.ko`, 'not a module either\n', { mode: 0o644 }),
    await putFile(repo, `/lib/modules/${v}/modules.dep`, 'kernel/extra/fakemod.ko:\n', { mode: 0o644 }),
    await putFile(repo, `/lib/modules/${v}/modules.builtin`, builtin, { mode: 0o644 }),
    ...extra,
  ];
  const bytes = serializeManifest({ schemaVersion: 1, entries });
  const id = manifestId(bytes);
  await repo.blobs.putBuffer(bytes);
  const files = entries.filter((e) => e.type === 'file');
  await repo.catalog.addImage({ id, createdAt: '', source: 'test', sourceKind: 'test', entryCount: entries.length, fileCount: files.length, totalSize: files.reduce((n, e) => n + (e.size ?? 0), 0) }, entries, undefined, []);
  return id;
}
