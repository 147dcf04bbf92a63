import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BASE_MODULES } from '../../src/core/bootable/modules.js';
import { PLATFORMS, platformModules } from '../../src/core/bootable/platforms.js';

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
