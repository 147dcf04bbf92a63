import { execa } from 'execa';
import { closeSync, openSync, writeSync } from 'node:fs';
import { chown, link, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { inClass, type HostileCase } from './harness.js';

async function tree(d: string): Promise<string> {
  const root = join(d, 'tree');
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc', 'hostname'), 'dir\n');
  return root;
}

/** Directory sources: what they contain is imported as it is, never followed or opened where it should not be. */
export const DIR_CASES: HostileCase[] = inClass('directory sources', [
  {
    name: 'a FIFO in the tree is an entry, never opened',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await execa('mkfifo', [join(root, 'pipe')]);
      return root;
    },
    exitCode: 0,
    maxSeconds: 60,
    check: (_json, { entries }) => expect(entries.get('/pipe')?.type).toBe('fifo'),
  },
  {
    name: 'a symlink to a host secret is kept as a symlink, not read',
    make: async ({ dir: d, secret }) => {
      const root = await tree(d);
      await symlink(secret, join(root, 'etc', 'shadow'));
      return root;
    },
    exitCode: 0,
    check: (_json, { entries, secret }) => expect(entries.get('/etc/shadow')).toMatchObject({ type: 'symlink', target: secret }),
  },
  {
    name: 'a symlink to a host directory is not walked',
    make: async ({ dir: d, hostDir }) => {
      const root = await tree(d);
      await symlink(hostDir, join(root, 'host'));
      return root;
    },
    exitCode: 0,
    check: (_json, { entries }) => {
      expect(entries.get('/host')?.type).toBe('symlink');
      expect([...entries.keys()].some((p) => p.startsWith('/host/'))).toBe(false);
    },
  },
  {
    name: 'symlinks in a loop',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await symlink('b', join(root, 'a'));
      await symlink('a', join(root, 'b'));
      return root;
    },
    exitCode: 0,
  },
  {
    name: 'the source path itself is a symlink to the tree (the user named it)',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await symlink(root, join(d, 'current'));
      return join(d, 'current');
    },
    exitCode: 0,
    check: (_json, { entries }) => expect(entries.get('/etc/hostname')?.type).toBe('file'),
  },
  {
    name: 'a socket is skipped with a warning',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await execa('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', join(root, 'sock')]);
      return root;
    },
    exitCode: 0,
    check: (json, { entries }) => {
      expect(entries.has('/sock')).toBe(false);
      expect(JSON.stringify(json.skipped)).toContain('/sock');
    },
  },
  {
    name: 'a 100 GiB sparse file',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      const f = join(root, 'lastlog');
      await writeFile(f, '');
      await truncate(f, 100 * 2 ** 30);
      const fd = openSync(f, 'r+');
      writeSync(fd, Buffer.from('record'), 0, 6, 50 * 2 ** 30);
      closeSync(fd);
      return root;
    },
    exitCode: 0,
    maxStoredBytes: 1 << 20,
    maxSeconds: 60,
    check: (_json, { entries }) => expect(entries.get('/lastlog')).toMatchObject({ size: 100 * 2 ** 30, sparse: `[[${50 * 2 ** 30},4096]]` }),
  },
  {
    name: 'names with a newline and bytes that are not UTF-8',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await writeFile(Buffer.from(join(root, 'new\nline')), 'n\n');
      await writeFile(Buffer.concat([Buffer.from(root + '/'), Buffer.from([0xff, 0xfe, 0x41])]), 'latin\n');
      return root;
    },
    exitCode: 0,
  },
  {
    name: 'a tree 300 directories deep',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      let p = root;
      for (let i = 0; i < 300; i++) p = join(p, 'd');
      await mkdir(p, { recursive: true });
      await writeFile(join(p, 'bottom'), 'deep\n');
      return root;
    },
    exitCode: 0,
    maxSeconds: 60,
  },
  {
    name: 'one file with 500 hard links',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await writeFile(join(root, 'f0'), 'linked\n');
      for (let i = 1; i < 500; i++) await link(join(root, 'f0'), join(root, `f${i}`));
      return root;
    },
    exitCode: 0,
    maxSeconds: 60,
    check: (_json, { entries }) => expect(entries.get('/f499')).toMatchObject({ type: 'hardlink', target: '/f0' }),
  },
  {
    name: 'a file the importing user cannot read',
    make: async ({ dir: d }) => {
      const root = await tree(d);
      await writeFile(join(root, 'etc', 'shadow'), 'root:*:1:0:::\n', { mode: 0o600 });
      await chown(join(root, 'etc', 'shadow'), 1000, 1000);
      return root;
    },
    unprivileged: true,
    exitCode: 7,
    code: 'E_PERMISSION',
  },
  {
    name: 'a tree whose oci-layout is a symlink to a host file',
    make: async ({ dir: d, secret }) => {
      const root = await tree(d);
      await symlink(secret, join(root, 'oci-layout'));
      await writeFile(join(root, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
      return root;
    },
    exitCode: 4,
    code: 'E_LAYOUT_SYMLINK',
  },
]);
