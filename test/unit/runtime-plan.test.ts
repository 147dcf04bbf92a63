import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Entry } from '../../src/core/model/entry.js';
import { canonicalImagePath, commandPrograms, planImageRuntime } from '../../src/core/runtime/image-source.js';
import { describeAction, describeOrigin, planOwners, planRuntimeState, type RuntimeInputs } from '../../src/core/runtime/plan.js';
import { parseTmpfiles } from '../../src/core/runtime/tmpfiles.js';
import { parseUnitFile } from '../../src/core/runtime/unit-file.js';

const USERS = [
  { name: 'root', uid: 0, gid: 0 },
  { name: 'mysql', uid: 104, gid: 110 },
  { name: 'redis', uid: 100, gid: 101 },
];
const GROUPS = [
  { name: 'root', gid: 0 },
  { name: 'adm', gid: 4 },
  { name: 'redis', gid: 101 },
  { name: 'mysql', gid: 110 },
];

const tmpfiles = (file: string, text: string) => ({ file, lines: parseTmpfiles(text, file).lines });
const inputs = (over: Partial<RuntimeInputs>): RuntimeInputs => ({ tmpfiles: [], units: [], users: USERS, groups: GROUPS, ...over });

describe('planRuntimeState', () => {
  it('turns tmpfiles.d lines into actions with numeric owners, parents first', () => {
    const plan = planRuntimeState(
      inputs({
        tmpfiles: [
          tmpfiles('/usr/lib/tmpfiles.d/mariadb.conf', 'd /run/mysqld/sub 0750 mysql mysql -\nd /run/mysqld 0755 mysql root -\nf /run/mysqld/flag - - - - hi\\n\nL /run/link - - - - /run/mysqld\nZ /var/lib/mysql - mysql - -'),
        ],
      }),
    );
    expect(plan.skipped).toEqual([]);
    expect(plan.actions.map((a) => [a.kind, a.path])).toEqual([
      ['symlink', '/run/link'],
      ['dir', '/run/mysqld'],
      ['file', '/run/mysqld/flag'],
      ['dir', '/run/mysqld/sub'],
      ['adjust', '/var/lib/mysql'],
    ]);
    expect(plan.actions[1]).toMatchObject({ mode: 0o755, uid: 104, gid: 0, user: 'mysql', group: 'root', origin: { kind: 'tmpfiles', file: '/usr/lib/tmpfiles.d/mariadb.conf', line: 2 } });
    expect(plan.actions[2]).toMatchObject({ content: Buffer.from('hi\n').toString('base64'), truncate: false });
    expect(plan.actions[2]).not.toHaveProperty('uid');
    expect(plan.actions[4]).toMatchObject({ recursive: true, uid: 104 });
    expect(plan.actions[4]).not.toHaveProperty('gid');
    expect(describeAction(plan.actions[1]!)).toBe('directory /run/mysqld (mode 0755, owner mysql:root)');
    expect(describeOrigin(plan.actions[1]!.origin)).toBe('tmpfiles.d line 2 of /usr/lib/tmpfiles.d/mariadb.conf');
  });

  it('lets the first line for a path win, across files in order', () => {
    const plan = planRuntimeState(inputs({ tmpfiles: [tmpfiles('/a.conf', 'd /run/x 0700'), tmpfiles('/b.conf', 'd /run/x 0755\nz /run/x 0711')] }));
    expect(plan.actions.map((a) => [a.kind, 'mode' in a && a.mode, a.origin.kind === 'tmpfiles' && a.origin.file])).toEqual([
      ['dir', 0o700, '/a.conf'],
      ['adjust', 0o711, '/b.conf'],
    ]);
  });

  it('skips what it does not create, warning only for state it leaves out', () => {
    const plan = planRuntimeState(
      inputs({
        tmpfiles: [tmpfiles('/x.conf', 'r! /etc/passwd.lock\nw /proc/sys/x - - - - 1\nd /sys/fs/x\nc /dev/foo 0600 - - - 1:3\nK /run/new-type\nd /run/%m\nd /run/a 0755 nobody\nd /run/ok')],
      }),
    );
    expect(plan.actions.map((a) => a.path)).toEqual(['/run/ok']);
    expect(plan.skipped.map((s) => [s.origin.kind === 'tmpfiles' && s.origin.line, s.warn])).toEqual([
      [1, false],
      [2, false],
      [3, false],
      [4, true],
      [5, true],
      [6, true],
      [7, true],
    ]);
    expect(plan.skipped[4]!.reason).toMatch(/unknown type K/);
    expect(plan.skipped[6]!.reason).toMatch(/user nobody/);
  });

  it("creates the unit's directories owned by User=/Group= (the user's group by default), over a tmpfiles.d line", () => {
    const unit = parseUnitFile('[Service]\nUser=redis\nRuntimeDirectory=redis\nRuntimeDirectoryMode=2755\nStateDirectory=redis\nConfigurationDirectory=redis\n');
    const plan = planRuntimeState(inputs({ tmpfiles: [tmpfiles('/t.conf', 'd /run/redis 0700 root root')], units: [{ name: 'redis-server.service', unit }] }));
    expect(plan.units).toEqual(['redis-server.service']);
    expect(plan.actions).toEqual([
      { kind: 'dir', path: '/etc/redis', mode: 0o755, uid: 0, gid: 0, user: 'root', group: 'root', origin: { kind: 'unit', unit: 'redis-server.service', setting: 'ConfigurationDirectory' } },
      { kind: 'dir', path: '/run/redis', mode: 0o2755, uid: 100, gid: 101, user: 'redis', group: 'redis', origin: { kind: 'unit', unit: 'redis-server.service', setting: 'RuntimeDirectory' } },
      { kind: 'dir', path: '/var/lib/redis', mode: 0o755, uid: 100, gid: 101, user: 'redis', group: 'redis', origin: { kind: 'unit', unit: 'redis-server.service', setting: 'StateDirectory' } },
    ]);
    const owners = planOwners(plan.actions);
    expect([...owners.uids.keys()]).toEqual([100]);
    expect([...owners.gids.keys()]).toEqual([101]);
  });

  it('warns when User= is unknown and leaves the directory to root', () => {
    const unit = parseUnitFile('[Service]\nUser=ghost\nRuntimeDirectory=g\n');
    const plan = planRuntimeState(inputs({ units: [{ name: 'g.service', unit }] }));
    expect(plan.actions[0]).toMatchObject({ path: '/run/g' });
    expect(plan.actions[0]).not.toHaveProperty('uid');
    expect(plan.skipped[0]).toMatchObject({ warn: true, reason: expect.stringMatching(/ghost/) });
  });

  it('resolves paths through the image with the given function', () => {
    const plan = planRuntimeState(inputs({ tmpfiles: [tmpfiles('/t.conf', 'd /var/run/x')], canonical: (p) => p.replace(/^\/var\/run\//, '/run/') }));
    expect(plan.actions[0]!.path).toBe('/run/x');
  });
});

/** A manifest built from a few paths: dirs by a trailing "/", "->" for symlinks, otherwise files. */
function image(spec: Record<string, string | null>): { entries: Map<string, Entry>; readBlob: (b: string) => Promise<Buffer> } {
  const entries = new Map<string, Entry>();
  const blobs = new Map<string, Buffer>();
  const add = (e: Entry) => entries.set(e.path, e);
  add({ path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  for (const [raw, content] of Object.entries(spec)) {
    const path = raw.replace(/\/$/, '');
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const p = `/${parts.slice(0, i).join('/')}`;
      if (!entries.has(p)) add({ path: p, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
    }
    if (raw.endsWith('/')) add({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
    else if (content?.startsWith('-> ')) add({ path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: content.slice(3) });
    else {
      const buf = Buffer.from(content ?? '');
      const blob = createHash('sha256').update(buf).digest('hex');
      blobs.set(blob, buf);
      add({ path, type: 'file', mode: path.includes('bin/') ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0, size: buf.length, blob });
    }
  }
  return { entries, readBlob: async (b) => blobs.get(b)! };
}

const REDIS_UNIT = '[Service]\nExecStart=/usr/bin/redis-server /etc/redis/redis.conf\nUser=redis\nRuntimeDirectory=redis\nRuntimeDirectoryMode=2755\n';

function goldLike() {
  return image({
    '/bin': '-> usr/bin',
    '/lib': '-> usr/lib',
    '/var/run': '-> /run',
    '/run/': null,
    '/usr/bin/redis-server': 'ELF',
    '/usr/bin/setpriv': 'ELF',
    '/usr/bin/other': 'ELF',
    '/usr/bin/python3': '-> python3.11',
    '/usr/bin/python3.11': 'ELF',
    '/srv/app.py': 'print(1)',
    '/usr/lib/systemd/system/py-other.service': '[Service]\nExecStart=/usr/bin/python3 -u /srv/other.py\nRuntimeDirectory=py-other\n',
    '/usr/lib/systemd/system/py-app.service': '[Service]\nExecStart=/usr/bin/python3 -u /srv/app.py\nRuntimeDirectory=py-app\n',
    '/etc/passwd': 'root:x:0:0::/root:/bin/sh\nredis:x:100:101::/var/lib/redis:/usr/sbin/nologin\n',
    '/etc/group': 'root:x:0:\nredis:x:101:\n',
    '/usr/lib/systemd/system/redis-server.service': REDIS_UNIT,
    '/usr/lib/systemd/system/redis-server@.service': REDIS_UNIT,
    '/usr/lib/systemd/system/other.service': '[Service]\nExecStart=/bin/other\nRuntimeDirectory=other\n',
    '/usr/lib/systemd/system/masked.service': '[Service]\nExecStart=/usr/bin/redis-server\nRuntimeDirectory=masked\n',
    '/etc/systemd/system/masked.service': '-> /dev/null',
    '/etc/systemd/system/redis.service': '-> /lib/systemd/system/redis-server.service',
    '/etc/systemd/system/redis-server.service.d/override.conf': '[Service]\nRuntimeDirectoryMode=0750\n',
    '/usr/lib/tmpfiles.d/a.conf': 'd /var/run/a 0755 redis redis\n',
    '/usr/lib/tmpfiles.d/b.conf': 'd /run/b-from-usr\n',
    '/etc/tmpfiles.d/b.conf': 'd /run/b-from-etc\n',
    '/usr/lib/tmpfiles.d/c.conf': 'd /run/c\n',
    '/etc/tmpfiles.d/c.conf': '-> /dev/null',
  });
}

describe('planImageRuntime (from a manifest)', () => {
  it('reads tmpfiles.d with overrides and masks, and finds the unit by the program the workload runs', async () => {
    const img = goldLike();
    const plan = await planImageRuntime(img, { command: 'setpriv --reuid=redis -- redis-server /etc/redis/redis.conf --daemonize no' });
    expect(plan.detected).toBe(true);
    expect(plan.units).toEqual(['redis-server.service']);
    expect(plan.tmpfiles).toEqual(['/usr/lib/tmpfiles.d/a.conf', '/etc/tmpfiles.d/b.conf']);
    expect(plan.actions.map((a) => [a.path, 'mode' in a ? a.mode : undefined, 'uid' in a ? a.uid : undefined])).toEqual([
      ['/run/a', 0o755, 100],
      ['/run/b-from-etc', undefined, undefined],
      ['/run/redis', 0o750, 100],
    ]);
  });

  it('tells services of one interpreter apart by their script', async () => {
    const plan = await planImageRuntime(goldLike(), { command: 'exec python3 /srv/app.py --port 80' });
    expect(plan.units).toEqual(['py-app.service']);
  });

  it('takes a named unit through its alias, and refuses one the image lacks', async () => {
    const img = goldLike();
    const plan = await planImageRuntime(img, { units: ['redis'], command: 'other' });
    expect(plan.detected).toBe(false);
    expect(plan.units).toEqual(['redis-server.service']);
    await expect(planImageRuntime(img, { units: ['nope.service'] })).rejects.toThrow(/unit nope.service is not in the image/);
    await expect(planImageRuntime(img, { units: ['masked'] })).rejects.toThrow(/masked/);
    expect((await planImageRuntime(img, { units: [] })).units).toEqual([]);
  });

  it('names the programs of a command that are in the image, wrappers and shells aside', () => {
    const img = goldLike();
    expect(commandPrograms(img.entries, 'exec setpriv --reuid=redis /bin/redis-server /etc/passwd; sh -c other')).toEqual(['/usr/bin/redis-server', '/etc/passwd', '/usr/bin/other']);
    // an interpreter names no service; the script it runs does
    expect(commandPrograms(img.entries, 'python3 /srv/app.py')).toEqual(['/srv/app.py']);
    expect(canonicalImagePath(img.entries, '/var/run/x/y')).toBe('/run/x/y');
    expect(canonicalImagePath(img.entries, '/bin')).toBe('/bin');
  });
});
