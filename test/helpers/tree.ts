import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readdir, readlink, symlink, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface NodeInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  xattrs: Record<string, string>;
  /** Other names of the same inode (regular files with nlink > 1), sorted. */
  links?: string[];
}

/** Every attribute of every node under root, keyed by relative path (bytes as latin1). */
export async function snapshotTree(root: string): Promise<Map<string, NodeInfo>> {
  const out = new Map<string, NodeInfo>();
  const inodes = new Map<string, string[]>();
  const { stdout } = await execa('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', root], { encoding: 'buffer', reject: false });
  const xattrs = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of Buffer.from(stdout as Uint8Array).toString('latin1').split('\n')) {
    if (line.startsWith('# file: ')) xattrs.set(line.slice(8).replace(/\\134/g, '\\'), (cur = {}));
    else if (cur && line.includes('=')) cur[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  const walk = async (hostDir: Buffer, rel: string) => {
    const st = await lstat(hostDir, { bigint: true });
    const info = (p: Buffer, s: typeof st): NodeInfo => {
      const type = s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : s.isCharacterDevice() ? 'char' : s.isBlockDevice() ? 'block' : s.isFIFO() ? 'fifo' : 'other';
      const n: NodeInfo = { type, mode: Number(s.mode & 0o7777n), uid: Number(s.uid), gid: Number(s.gid), mtimeNs: s.mtimeNs.toString(), xattrs: xattrs.get(p.toString('latin1')) ?? {} };
      if (type === 'file') {
        n.size = Number(s.size);
        n.sha256 = createHash('sha256').update(readFileSync(p)).digest('hex');
      }
      if (type === 'char' || type === 'block') n.rdev = s.rdev.toString();
      return n;
    };
    if (rel === '') out.set('', info(hostDir, st));
    const names = (await readdir(hostDir, { encoding: 'buffer' })) as Buffer[];
    for (const name of names) {
      const p = Buffer.concat([hostDir, Buffer.from('/'), name]);
      const r = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      const s = await lstat(p, { bigint: true });
      const n = info(p, s);
      if (n.type === 'symlink') n.target = ((await readlink(p, { encoding: 'buffer' })) as Buffer).toString('latin1');
      if (n.type === 'file' && s.nlink > 1n) {
        const key = `${s.dev}:${s.ino}`;
        const list = inodes.get(key) ?? [];
        list.push(r);
        inodes.set(key, list);
      }
      out.set(r, n);
      if (n.type === 'dir') await walk(p, r);
    }
  };
  await walk(Buffer.from(root), '');
  for (const group of inodes.values()) for (const p of group) out.get(p)!.links = [...group].sort();
  return out;
}

/** Differences between two snapshots, as readable lines (empty when identical). */
export function compareSnapshots(a: Map<string, NodeInfo>, b: Map<string, NodeInfo>, options: { ignoreRootMtime?: boolean } = {}): string[] {
  const diffs: string[] = [];
  for (const [p, x] of a) {
    const y = b.get(p);
    if (!y) {
      diffs.push(`missing: ${p}`);
      continue;
    }
    const xs = { ...x };
    const ys = { ...y };
    if (p === '' && options.ignoreRootMtime) xs.mtimeNs = ys.mtimeNs = '0';
    if (JSON.stringify(xs) !== JSON.stringify(ys)) diffs.push(`differs: ${p}: ${JSON.stringify(xs)} vs ${JSON.stringify(ys)}`);
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`extra: ${p}`);
  return diffs;
}

async function touch(path: string, stamp: string): Promise<void> {
  await execa('touch', ['-h', '-d', stamp, path]);
}

/**
 * A tree with every entry type and attribute aim must keep: setuid binary, file capability,
 * user xattr, hardlinks, absolute and relative symlinks, fifo, char device, empty dir, sticky
 * dir, other owners, a non-UTF-8 name, a path longer than 255 bytes, nanosecond times.
 */
export async function buildEveryTypeTree(root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  await mkdir(join(root, 'bin'));
  await copyFile('/bin/true', join(root, 'bin', 'su-like'));
  await chmod(join(root, 'bin', 'su-like'), 0o4755);
  await copyFile('/bin/true', join(root, 'bin', 'ping-like'));
  await execa('setcap', ['cap_net_raw+ep', join(root, 'bin', 'ping-like')]);
  await writeFile(join(root, 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  await link(join(root, 'bin', 'tool'), join(root, 'bin', 'tool-alias'));
  await link(join(root, 'bin', 'tool'), join(root, 'hardlink-top'));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc', 'config'), 'key=value\n');
  await execa('setfattr', ['-n', 'user.origin', '-v', 'aim-test', join(root, 'etc', 'config')]);
  await symlink('/etc/config', join(root, 'abs-link'));
  await symlink('../etc/config', join(root, 'bin', 'rel-link'));
  await symlink('dangling/target', join(root, 'dangling'));
  await execa('mkfifo', ['-m', '0620', join(root, 'fifo')]);
  await mkdir(join(root, 'dev'));
  await execa('mknod', ['-m', '0666', join(root, 'dev', 'null'), 'c', '1', '3']);
  await mkdir(join(root, 'empty'));
  await mkdir(join(root, 'tmp'), { mode: 0o1777 });
  await chmod(join(root, 'tmp'), 0o1777);
  await mkdir(join(root, 'home', 'user'), { recursive: true });
  await writeFile(join(root, 'home', 'user', 'notes'), 'mine\n', { mode: 0o600 });
  await chown(join(root, 'home', 'user'), 1000, 1000);
  await chown(join(root, 'home', 'user', 'notes'), 1000, 1001);
  await writeFile(Buffer.from(`${root}/latin1-\xe9t\xe9-\xff`, 'latin1'), 'not utf-8 name\n');
  let deep = join(root, 'deep');
  for (let i = 0; i < 6; i++) deep = join(deep, `directory-level-${i}-${'x'.repeat(40)}`);
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, 'file-at-the-bottom.txt'), 'deep\n');
  await writeFile(join(root, 'etc', 'empty-file'), '');
  await writeFile(join(root, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 5, 0x5a));
  await touch(join(root, 'etc', 'config'), '2021-03-04 05:06:07.123456789');
  await touch(join(root, 'abs-link'), '2020-01-01 00:00:01.5');
  await touch(join(root, 'empty'), '2019-02-03 04:05:06.000000007');
}
