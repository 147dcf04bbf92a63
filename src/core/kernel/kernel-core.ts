import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConfigError, InputError } from '../../lib/errors.js';
import { runTool } from '../../lib/exec.js';
import { makeScratchDir } from '../../lib/fs.js';
import type { Reporter } from '../../lib/reporter.js';
import { readHostAptSources, sourcesForSuite } from '../import/apt-sources.js';
import { importImage, type ImportResult } from '../import/import-image.js';
import { parseTag } from '../import/tags.js';
import type { Repository } from '../repository/repository.js';

export interface KernelCoreRequest {
  /** Debian suite whose linux-image-amd64 is taken (default: the machine's own). */
  suite: string;
  tag: string;
  /** Directory where downloaded kernel packages are kept and looked up again (a cache). */
  debDir?: string;
}

export interface KernelCoreResult extends ImportResult {
  package: string;
  kernelVersion: string;
  /** The cached .deb, when a --deb-dir kept it. */
  deb?: string;
}

/** The codename of the running Debian (VERSION_CODENAME in /etc/os-release). */
async function hostCodename(): Promise<string | undefined> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^VERSION_CODENAME=("?)([^"\n]*)\1$/m.exec(text)?.[2];
}

/**
 * apt options for a suite: none for the machine's own suite (its apt lists are current), else a
 * private apt state with the machine's sources re-aimed at `suite`, refreshed with `apt-get update`.
 */
async function aptOptionsFor(suite: string, scratch: string): Promise<string[]> {
  if (suite === (await hostCodename())) return [];
  const lists = join(scratch, 'apt', 'lists');
  const cache = join(scratch, 'apt', 'cache');
  await mkdir(join(lists, 'partial'), { recursive: true });
  await mkdir(join(cache, 'archives', 'partial'), { recursive: true });
  const sourceList = join(scratch, 'apt', 'sources.list');
  await writeFile(sourceList, sourcesForSuite(await readHostAptSources(), suite).join('\n') + '\n');
  const options = ['-o', `Dir::Etc::SourceList=${sourceList}`, '-o', 'Dir::Etc::SourceParts=/dev/null', '-o', `Dir::State::Lists=${lists}`, '-o', `Dir::Cache=${cache}`];
  await runTool('apt-get', [...options, '-q', 'update']);
  return options;
}

/** linux-image-amd64's dependency: the versioned kernel package ("linux-image-6.1.0-56-amd64"). */
export function versionedKernelPackage(aptCacheDepends: string): string | undefined {
  return /Depends: (linux-image-[0-9][^\s]*-amd64)\b/.exec(aptCacheDepends)?.[1];
}

/**
 * Builds the kernel part of the shared core: Debian's kernel package for `suite` is downloaded
 * (or taken from `debDir`), unpacked, its module index made with depmod, and the tree (vmlinuz,
 * /lib/modules) imported as an image, so slim images without a kernel can boot with it.
 */
export async function buildKernelCore(repo: Repository, request: KernelCoreRequest, reporter: Reporter): Promise<KernelCoreResult> {
  parseTag(request.tag);
  const scratch = await makeScratchDir('kernel');
  try {
    reporter.emit({ type: 'stage', stage: 'kernel', status: 'start', detail: `linux-image-amd64 (${request.suite})` });
    const apt = await aptOptionsFor(request.suite, scratch);
    const depends = await runTool('apt-cache', [...apt, 'depends', 'linux-image-amd64']);
    const pkg = versionedKernelPackage(depends.stdout);
    if (!pkg) throw new ConfigError(`no kernel package for ${request.suite}: apt-cache depends linux-image-amd64 names none`, { hint: 'check the machine\'s apt sources and run apt-get update' });
    const debDir = resolve(request.debDir ?? join(scratch, 'debs'));
    await mkdir(debDir, { recursive: true });
    const deb = await cachedOrDownloaded(pkg, debDir, apt, scratch);
    const root = join(scratch, 'root');
    await mkdir(root);
    await runTool('dpkg-deb', ['-x', deb, root]);
    const versions = await readdir(join(root, 'lib', 'modules')).catch(() => [] as string[]);
    if (versions.length !== 1) throw new InputError('E_BAD_KERNEL_PACKAGE', `${deb} holds ${versions.length} module trees, expected 1`);
    const kernelVersion = versions[0]!;
    if (!existsSync(join(root, 'boot', `vmlinuz-${kernelVersion}`))) throw new InputError('E_BAD_KERNEL_PACKAGE', `${deb} has no /boot/vmlinuz-${kernelVersion}`);
    await runTool('depmod', ['-b', root, kernelVersion]);
    // Documentation and the kernel's symbol map are not needed to boot.
    await rm(join(root, 'usr', 'share'), { recursive: true, force: true });
    await rm(join(root, 'boot', `System.map-${kernelVersion}`), { force: true });
    // depmod's index files and the unpack directories get the kernel's own time, so the same
    // package always gives the same image id.
    const { mtime } = await stat(join(root, 'boot', `vmlinuz-${kernelVersion}`));
    const modulesDir = join(root, 'lib', 'modules', kernelVersion);
    for (const name of (await readdir(modulesDir)).filter((n) => n.startsWith('modules.'))) await utimes(join(modulesDir, name), mtime, mtime);
    for (const dir of [modulesDir, join(root, 'lib', 'modules'), join(root, 'lib'), join(root, 'boot'), join(root, 'usr'), root]) {
      if (existsSync(dir)) await utimes(dir, mtime, mtime);
    }
    reporter.emit({ type: 'stage', stage: 'kernel', status: 'done', detail: kernelVersion });
    const imported = await importImage(repo, { source: root, kind: 'dir', tags: [request.tag] }, reporter);
    // without --deb-dir the .deb lived in scratch space, which is gone once this returns
    return { ...imported, package: pkg, kernelVersion, ...(request.debDir === undefined ? {} : { deb }) };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The package's .deb from the cache directory, downloaded there first when absent. */
async function cachedOrDownloaded(pkg: string, debDir: string, apt: string[], scratch: string): Promise<string> {
  const find = async () => (await readdir(debDir)).filter((n) => n.startsWith(`${pkg}_`) && n.endsWith('_amd64.deb')).sort().at(-1);
  const hit = await find();
  if (hit) return join(debDir, hit);
  const dl = join(scratch, 'download');
  await mkdir(dl);
  await runTool('apt-get', [...apt, '-q', 'download', pkg], { cwd: dl });
  const got = (await readdir(dl)).find((n) => n.endsWith('.deb'));
  if (!got) throw new ConfigError(`apt-get download ${pkg} wrote no package`);
  // Rename from the same filesystem when possible; a parallel download of the same file is harmless.
  const tmp = join(debDir, `.${got}.${process.pid}.partial`);
  await copyFile(join(dl, got), tmp);
  await rename(tmp, join(debDir, got));
  return join(debDir, got);
}
