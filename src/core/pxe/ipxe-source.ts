import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readFile, readdir, readlink, symlink, utimes } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { ConfigError, InputError } from '../../lib/errors.js';
import { sha256File } from '../../lib/fs.js';

/** An iPXE source as the user named it: a tree (a checkout) or a tarball of one. */
export interface IpxeSource {
  kind: 'tree' | 'tarball';
  /** Absolute path. */
  path: string;
  /** Tarball: the sha256 of the file. Tree: the sha256 of its files (hashIpxeTree). */
  sha256: string;
  /** A git checkout: the commit its HEAD names, which iPXE's build puts in its version string. */
  gitCommit?: string;
}

/** Where the source's tree has its top (the directory holding src/), or an error naming what is missing. */
export function checkIpxeSource(dir: string): string {
  const top = resolve(dir);
  if (!existsSync(top) || !statSync(top).isDirectory()) throw new ConfigError(`--ipxe-src ${dir}: no such directory`, { hint: 'give the top directory of an iPXE source tree (the one holding src/) or a tarball of one' });
  const missing = ['src/Makefile', 'src/include/ipxe', 'src/arch/x86'].filter((p) => !existsSync(join(top, p)));
  if (missing.length > 0) {
    throw new ConfigError(`--ipxe-src ${dir} is not an iPXE source tree (missing ${missing.join(', ')})`, { hint: 'give the top directory of an iPXE checkout (the one holding src/Makefile), e.g. git clone https://github.com/ipxe/ipxe' });
  }
  return top;
}

/**
 * What iPXE's build writes into its own tree (its .gitignore files): never part of the source, so a
 * tree that was built in hashes as it did before, and nothing built elsewhere leaks into a build.
 */
const BUILD_OUTPUTS = [
  /^\.git$/,
  /^src\/bin$/,
  /^src\/bin-[^/]*$/,
  /^src\/\.(toolcheck|echocheck)$/,
  /^src\/TAGS[^/]*$/,
  /^src\/util\/(nrv2b|zbin32|zbin64|hijack|prototester|elf2efi32|elf2efi64|efirom|efifatbin|einfo)$/,
];

export function isBuildOutput(rel: string): boolean {
  return BUILD_OUTPUTS.some((re) => re.test(rel));
}

/** One object of a tree, in the order and form the hash covers. */
interface TreeObject {
  rel: string;
  type: 'dir' | 'file' | 'symlink';
  /** Files: whether any execute bit is set (genfsimg and the perl helpers must stay executable). */
  exec?: boolean;
  target?: string;
}

/**
 * Every directory, file and symlink under `top`, sorted by path (byte order), build outputs left
 * out. Refuses what a source tree has no business holding: devices, fifos, sockets, and links
 * that leave the tree (the build would read files the hash does not cover).
 */
async function listTree(top: string): Promise<TreeObject[]> {
  const out: TreeObject[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(top, rel))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (isBuildOutput(r)) continue;
      const st = await lstat(join(top, r));
      if (st.isDirectory()) {
        out.push({ rel: r, type: 'dir' });
        await walk(r);
      } else if (st.isFile()) out.push({ rel: r, type: 'file', exec: (st.mode & 0o111) !== 0 });
      else if (st.isSymbolicLink()) {
        const target = await readlink(join(top, r));
        const inside = normalize(join(rel, target));
        if (isAbsolute(target) || inside === '..' || inside.startsWith(`..${sep}`)) {
          throw new InputError('E_IPXE_SOURCE_LINK', `iPXE source ${top}: ${r} links outside the tree (to ${target})`, { hint: 'give a plain iPXE checkout or tarball: links must stay inside the tree' });
        }
        out.push({ rel: r, type: 'symlink', target });
      } else throw new InputError('E_IPXE_SOURCE_SPECIAL', `iPXE source ${top}: ${r} is not a file, directory or link`, { hint: 'give a plain iPXE checkout or tarball' });
    }
  };
  await walk('');
  return out;
}

/**
 * A deterministic hash of a tree's sources: each object's path, type, execute bit and content (or
 * link target) in path order; build outputs (BUILD_OUTPUTS) and times are left out, so the same
 * files give the same hash wherever and whenever they were checked out.
 */
export async function hashIpxeTree(top: string): Promise<string> {
  const h = createHash('sha256');
  for (const o of await listTree(top)) {
    const body = o.type === 'file' ? `${o.exec ? 'x' : '-'} ${await sha256File(join(top, o.rel))}` : o.type === 'symlink' ? o.target! : '';
    h.update(`${o.type} ${o.rel}\0${body}\0`);
  }
  return h.digest('hex');
}

/**
 * Copies a tree's sources (what hashIpxeTree covers, nothing else) into the new directory `to`;
 * files keep their execute bits and modification times (the build's SOURCE_DATE_EPOCH).
 */
export async function copyIpxeTree(from: string, to: string): Promise<void> {
  await mkdir(to);
  for (const o of await listTree(from)) {
    const dest = join(to, o.rel);
    if (o.type === 'dir') await mkdir(dest);
    else if (o.type === 'symlink') await symlink(o.target!, dest);
    else {
      await copyFile(join(from, o.rel), dest);
      await chmod(dest, o.exec ? 0o755 : 0o644);
      const st = await lstat(join(from, o.rel));
      await utimes(dest, st.atime, st.mtime);
    }
  }
}

/** The commit a git checkout's HEAD names (a branch through its ref file or packed-refs), if the tree is one. */
async function gitHead(top: string): Promise<string | undefined> {
  const git = join(top, '.git');
  const read = (p: string) => readFile(p, 'utf8').then((s) => s.trim(), () => undefined);
  const head = await read(join(git, 'HEAD'));
  if (!head) return undefined;
  const ref = /^ref: (refs\/[\w./-]+)$/.exec(head)?.[1];
  const commit = ref === undefined ? head : ((await read(join(git, ref))) ?? (await read(join(git, 'packed-refs')))?.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0]);
  return commit !== undefined && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit) ? commit : undefined;
}

/** Names the source: a tree is checked and hashed, a tarball hashed (it is unpacked only when something must be built). */
export async function identifyIpxeSource(path: string): Promise<IpxeSource> {
  const abs = resolve(path);
  const st = statSync(abs, { throwIfNoEntry: false });
  if (!st) throw new ConfigError(`--ipxe-src ${path}: no such file or directory`, { hint: 'give an iPXE source tree (the directory holding src/) or a tarball of one (git clone https://github.com/ipxe/ipxe)' });
  if (st.isDirectory()) {
    const top = checkIpxeSource(abs);
    const gitCommit = await gitHead(top);
    return { kind: 'tree', path: top, sha256: await hashIpxeTree(top), ...(gitCommit ? { gitCommit } : {}) };
  }
  if (!st.isFile()) throw new ConfigError(`--ipxe-src ${path} is neither a directory nor a file`, { hint: 'give an iPXE source tree or a tarball of one' });
  return { kind: 'tarball', path: abs, sha256: await sha256File(abs) };
}
