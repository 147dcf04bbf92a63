/**
 * What aim update sees of the tree dpkg left: a host directory compared with the planned manifest
 * (content, mode, owner, links, extended attributes, paths missing or new), touched paths only.
 */
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { chmod, mkdir, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTree } from '../../src/core/lifecycle/update-scripts.js';
import type { Entry } from '../../src/core/model/entry.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let root: string;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
const dir = (path: string): Entry => ({ path, type: 'dir', mode: 0o755, uid, gid, mtime: 0 });
const file = (path: string, text: string, mode = 0o644): Entry => ({ path, type: 'file', mode, uid, gid, mtime: 0, size: Buffer.byteLength(text), ...(text ? { blob: sha(text) } : {}) });
let planned: Entry[];
let since: number;

beforeAll(async () => {
  tmp = await tempDir('aim-tree-diff-');
  root = join(tmp.dir, 'root');
  for (const d of ['', 'etc', 'usr', 'usr/bin', 'proc', 'proc/1', 'drop']) await mkdir(join(root, d), { recursive: true });
  await chmod(root, 0o755);
  const put = async (p: string, text: string, mode = 0o644) => {
    await writeFile(join(root, p), text);
    await chmod(join(root, p), mode);
  };
  await put('etc/issue', 'Debian\n');
  await put('etc/untouched', 'old\n');
  await put('usr/bin/tool', 'tool 2\n', 0o755);
  await put('usr/bin/capable', 'binary\n', 0o755);
  await put('proc/1/status', 'ignored\n');
  await put('drop/x.deb', 'ignored\n');
  await symlink('tool', join(root, 'usr/bin/alias'));
  planned = [
    dir('/'), dir('/etc'), file('/etc/issue', 'Debian\n'), file('/etc/untouched', 'stale plan\n'), file('/etc/gone', 'planned but missing\n'),
    dir('/proc'), dir('/usr'), dir('/usr/bin'), { path: '/usr/bin/alias', type: 'symlink', mode: 0o777, uid, gid, mtime: 0, target: 'other' },
    file('/usr/bin/capable', 'binary\n', 0o755), file('/usr/bin/tool', 'tool 2\n', 0o755),
  ];
  // everything so far is "before the run", except what the run touches below
  for (const p of ['etc/untouched']) await utimes(join(root, p), 0, 0);
  await new Promise((r) => setTimeout(r, 50));
  since = Date.now();
  await new Promise((r) => setTimeout(r, 20));
  await writeFile(join(root, 'etc/issue'), 'Debian\npatched by a postinst\n');
  await chmod(join(root, 'usr/bin/tool'), 0o4755);
  await writeFile(join(root, 'etc/new.conf'), 'new\n');
  await execa('setfattr', ['-n', 'user.aim', '-v', 'cap', join(root, 'usr/bin/capable')]);
});
afterAll(async () => tmp?.cleanup());

describe('diffTree', () => {
  it('lists what the run changed against the plan, and only that', async () => {
    const gold = planned.filter((e) => e.path !== '/usr/bin/alias' && e.path !== '/etc/gone');
    const changes = await diffTree(root, planned, gold, since, '/drop');
    expect(changes).toEqual([
      { path: '/etc/gone', change: 'removed' },
      { path: '/etc/issue', change: 'modified', what: ['content'] },
      { path: '/etc/new.conf', change: 'added' },
      { path: '/usr/bin/alias', change: 'modified', what: ['target'] },
      { path: '/usr/bin/capable', change: 'modified', what: ['xattrs'] },
      { path: '/usr/bin/tool', change: 'modified', what: ['mode'] },
    ]);
  });
});
