import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readlink, realpath, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyRuntimePlan } from '../../src/core/runtime/apply.js';
import { planRuntimeState } from '../../src/core/runtime/plan.js';
import { parseTmpfiles } from '../../src/core/runtime/tmpfiles.js';
import { tempDir } from '../helpers/tmp.js';

const plan = (text: string) =>
  planRuntimeState({
    tmpfiles: [{ file: '/usr/lib/tmpfiles.d/t.conf', lines: parseTmpfiles(text, '/usr/lib/tmpfiles.d/t.conf').lines }],
    units: [],
    users: [
      { name: 'root', uid: 0, gid: 0 },
      { name: 'app', uid: 4242, gid: 4243 },
    ],
    groups: [
      { name: 'root', gid: 0 },
      { name: 'app', gid: 4243 },
    ],
  }).actions;

const MOUNTS = { dev: 0o755, tmp: 0o1777, run: 0o755 };
const AS_ROOT = process.getuid?.() === 0;

describe.skipIf(!AS_ROOT)('applyRuntimePlan (host side, into a materialised image)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let seed: string;
  beforeEach(async () => {
    tmp = await tempDir('aim-runtime-');
    root = join(await realpath(tmp.dir), 'root');
    seed = join(await realpath(tmp.dir), 'seed');
    await mkdir(join(root, 'var/lib'), { recursive: true });
    await mkdir(join(root, 'run'));
    await symlink('/run', join(root, 'var/run'));
    // a link that would leave the image if followed on the host
    await symlink('/', join(root, 'up'));
    await symlink('../../../../../../..', join(root, 'var/lib/out'));
    await mkdir(join(root, 'var/lib/tree/sub'), { recursive: true });
    await writeFile(join(root, 'var/lib/tree/sub/file'), '');
  });
  afterEach(async () => tmp.cleanup());

  it('creates directories, files and links with modes and owners; /run content goes to the seed', async () => {
    const result = await applyRuntimePlan(
      plan('d /var/run/app 2750 app app\nf /run/app/flag 0640 app - - hello\nL /run/app/link - - - - /run/app/flag\nd /var/lib/app/deep 0700 app app\nZ /var/lib/tree - app app'),
      { root, seed, mounts: MOUNTS },
    );
    expect(result.failed).toEqual([]);
    expect(result.applied).toBe(5);
    expect(result.seeded).toEqual(['run']);
    const dir = await lstat(join(seed, 'run/app'));
    expect([dir.isDirectory(), dir.mode & 0o7777, dir.uid, dir.gid]).toEqual([true, 0o2750, 4242, 4243]);
    expect((await lstat(join(seed, 'run'))).mode & 0o7777).toBe(0o755);
    const flag = await lstat(join(seed, 'run/app/flag'));
    expect([flag.mode & 0o7777, flag.uid, flag.gid]).toEqual([0o640, 4242, 0]);
    expect(await readFile(join(seed, 'run/app/flag'), 'utf8')).toBe('hello');
    expect(await readlink(join(seed, 'run/app/link'))).toBe('/run/app/flag');
    // nothing in the root's /run (the mount hides it) and nothing on the host
    expect(existsSync(join(root, 'run/app'))).toBe(false);
    expect(existsSync('/run/app/flag')).toBe(false);
    // outside the mount points: in the root, parents made as root's; Z took the whole tree
    const deep = await lstat(join(root, 'var/lib/app/deep'));
    expect([deep.mode & 0o7777, deep.uid, deep.gid]).toEqual([0o700, 4242, 4243]);
    expect((await lstat(join(root, 'var/lib/app'))).uid).toBe(0);
    expect((await lstat(join(root, 'var/lib/tree/sub/file'))).uid).toBe(4242);
    expect((await lstat(join(root, 'var/lib/tree'))).gid).toBe(4243);
  });

  it('resolves symlinks inside the image: an absolute or climbing link never leads out of it', async () => {
    const name = `aim-runtime-test-${process.pid}`;
    const result = await applyRuntimePlan(plan(`d /up/${name} 0755\nd /var/lib/out/${name}-2 0755\nf /up/var/lib/${name}.f`), { root, seed, mounts: MOUNTS });
    expect(result.failed).toEqual([]);
    expect(existsSync(join(root, name))).toBe(true);
    expect(existsSync(join(root, `${name}-2`))).toBe(true);
    expect(existsSync(join(root, 'var/lib', `${name}.f`))).toBe(true);
    expect(existsSync(`/${name}`)).toBe(false);
    expect(existsSync(`/${name}-2`)).toBe(false);
  });

  it('leaves existing paths alone where tmpfiles.d would, never follows a final symlink, and reports what fails', async () => {
    await writeFile(join(root, 'var/lib/existing'), 'keep');
    await writeFile(join(root, 'var/lib/target'), 'target');
    await symlink('target', join(root, 'var/lib/link'));
    const result = await applyRuntimePlan(plan('f /var/lib/existing 0600 - - - new\nd /var/lib/existing\nf+ /var/lib/link - - - - over\nL /var/lib/target - - - - /x\nd /var/lib/fresh :0700 app\nd /var/lib/fresh 0755'), {
      root,
      seed,
      mounts: MOUNTS,
    });
    expect(await readFile(join(root, 'var/lib/existing'), 'utf8')).toBe('keep');
    expect((await lstat(join(root, 'var/lib/existing'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(root, 'var/lib/target'), 'utf8')).toBe('target');
    expect((await lstat(join(root, 'var/lib/target'))).isFile()).toBe(true);
    expect(result.failed.map((f) => f.replace(/:.*/, ''))).toEqual(['file /var/lib/link (tmpfiles.d line 3 of /usr/lib/tmpfiles.d/t.conf)']);
    expect(result.failed[0]).toMatch(/non-file is in the way/);
    // the first line for a path wins (":" mode applies on creation only)
    const fresh = await lstat(join(root, 'var/lib/fresh'));
    expect([fresh.mode & 0o777, fresh.uid]).toEqual([0o700, 4242]);
    // f, L and d applied; the second lines for /var/lib/existing and /var/lib/fresh never became actions
    expect(result.applied).toBe(3);
  });
});
