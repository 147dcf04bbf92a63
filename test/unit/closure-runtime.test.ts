import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeClosure, explainPath } from '../../src/core/closure/index.js';
import type { ClosureInput } from '../../src/core/closure/index.js';
import type { Entry } from '../../src/core/model/entry.js';
import { planImageRuntime } from '../../src/core/runtime/image-source.js';

/** A manifest from a few paths: "/dir/" for directories, "-> target" for symlinks, else file content. */
function image(spec: Record<string, string | null>) {
  const entries = new Map<string, Entry>();
  const blobs = new Map<string, Buffer>();
  entries.set('/', { path: '/', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
  for (const [raw, content] of Object.entries(spec)) {
    const path = raw.replace(/\/$/, '');
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const p = `/${parts.slice(0, i).join('/')}`;
      if (!entries.has(p)) entries.set(p, { path: p, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
    }
    if (raw.endsWith('/')) entries.set(path, { path, type: 'dir', mode: 0o750, uid: 100, gid: 101, mtime: 0 });
    else if (content?.startsWith('-> ')) entries.set(path, { path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target: content.slice(3) });
    else {
      const buf = Buffer.from(content ?? '');
      const blob = createHash('sha256').update(buf).digest('hex');
      blobs.set(blob, buf);
      entries.set(path, { path, type: 'file', mode: path.includes('/bin/') ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0, size: buf.length, blob });
    }
  }
  return { entries, readBlob: async (b: string) => blobs.get(b)! };
}

const GOLD = image({
  '/var/run': '-> /run',
  '/run/': null,
  '/usr/bin/daemon': 'ELF',
  '/etc/passwd': 'root:x:0:0::/root:/bin/sh\ndaemon:x:100:101::/var/lib/daemon:/usr/sbin/nologin\nweb:x:33:33::/var/www:/usr/sbin/nologin\nother:x:200:200::/:/bin/false\n',
  '/etc/shadow': 'root:*:1::::::\ndaemon:!:1::::::\n',
  '/etc/group': 'root:x:0:\ndaemon:x:101:\nweb:x:33:\nadm:x:4:\n',
  '/etc/gshadow': 'root:*::\n',
  '/usr/lib/systemd/system/daemon.service': '[Service]\nExecStart=/usr/bin/daemon\nUser=daemon\nRuntimeDirectory=daemon\nStateDirectory=daemon\n',
  '/var/lib/daemon/': null,
  '/var/lib/empty/': null,
  '/usr/lib/tmpfiles.d/daemon.conf': 'd /var/run/daemon-sock 0755 daemon daemon\n',
  '/usr/lib/tmpfiles.d/web.conf': 'd /run/web 0750 web web\nd /var/log/web 0750 web adm\n',
  '/usr/lib/tmpfiles.d/unused.conf': 'd /run/unused 0755 other other\n',
});

async function closureFor(used: string[], extra: Partial<ClosureInput> = {}) {
  const plan = await planImageRuntime(GOLD, { command: '/usr/bin/daemon' });
  const closure = await computeClosure({
    entries: GOLD.entries,
    elf: () => undefined,
    readBlob: GOLD.readBlob,
    seeds: [
      { path: '/usr/bin/daemon', reason: { kind: 'traced', syscall: 'execve' } },
      { path: '/var/lib/empty', reason: { kind: 'traced', syscall: 'chdir', pid: 7 } },
    ],
    runtime: { actions: plan.actions, used, uids: [200], gids: [] },
    ...extra,
  });
  return { plan, closure };
}

describe('runtime state in the closure', () => {
  it('keeps the tmpfiles.d files whose lines made a path the workload used, and records their lines and the unit\'s', async () => {
    const { plan, closure } = await closureFor(['/var/run/daemon-sock/s.sock', '/usr/bin/daemon']);
    expect(plan.units).toEqual(['daemon.service']);
    expect(closure.kept.get('/usr/lib/tmpfiles.d/daemon.conf')).toEqual([{ kind: 'tmpfiles', line: 1, creates: '/run/daemon-sock' }]);
    expect(closure.kept.has('/usr/lib/tmpfiles.d/web.conf')).toBe(false);
    expect(closure.kept.has('/usr/lib/tmpfiles.d/unused.conf')).toBe(false);
    expect(closure.runtime).toEqual({
      actions: plan.actions.filter((a) => ['/run/daemon', '/run/daemon-sock', '/var/lib/daemon'].includes(a.path)),
      units: ['daemon.service'],
      tmpfiles: ['/usr/lib/tmpfiles.d/daemon.conf'],
    });
    // the unit's StateDirectory= exists in the gold image: kept, empty as it is
    expect(closure.kept.get('/var/lib/daemon')).toEqual([{ kind: 'runtime', by: 'StateDirectory= of daemon.service' }]);
  });

  it('keeps passwd/group/shadow for the owners of planned paths and the users the workload switched to', async () => {
    const { closure } = await closureFor(['/run/web/x']);
    const reasons = closure.kept.get('/etc/passwd') ?? [];
    expect(reasons).toContainEqual({ kind: 'user', name: 'daemon', why: 'owner of /run/daemon (RuntimeDirectory= of daemon.service)' });
    expect(reasons).toContainEqual({ kind: 'user', name: 'web', why: 'owner of /run/web (tmpfiles.d line 1 of /usr/lib/tmpfiles.d/web.conf)' });
    expect(reasons).toContainEqual({ kind: 'user', name: 'other', why: 'whom the workload switched to' });
    expect(closure.kept.get('/etc/shadow')).toContainEqual({ kind: 'user', name: 'daemon', why: 'owner of /run/daemon (RuntimeDirectory= of daemon.service)' });
    expect(closure.kept.get('/etc/gshadow')).toContainEqual({ kind: 'group', name: 'adm', why: 'group of /var/log/web (tmpfiles.d line 2 of /usr/lib/tmpfiles.d/web.conf)' });
    // a workload that switches to nobody and owns nothing keeps no accounts
    const bare = await computeClosure({ entries: GOLD.entries, elf: () => undefined, readBlob: GOLD.readBlob, seeds: [], runtime: { actions: [], used: [], uids: [0], gids: [0] } });
    expect(bare.kept.has('/etc/passwd')).toBe(false);
  });

  it('explains each rule: the runtime directory, the tmpfiles.d line, the directory chdir\'d into, the user switched to', async () => {
    const { closure } = await closureFor(['/var/run/daemon-sock/s.sock']);
    const say = (p: string) => explainPath(closure, GOLD.entries, p);
    expect(say('/run/daemon')).toMatchObject({ created: true, kept: false });
    expect(say('/run/daemon').reasons[0]).toBe(
      "/run/daemon is made before the workload starts (by aim's init at boot, and in the profile sandbox): directory /run/daemon (mode 0755, owner daemon:daemon), from RuntimeDirectory= of daemon.service",
    );
    expect(say('/var/run/daemon-sock').reasons[0]).toMatch(/^\/var\/run\/daemon-sock is made before the workload starts .* from tmpfiles.d line 1 of \/usr\/lib\/tmpfiles.d\/daemon.conf$/);
    expect(say('/usr/lib/tmpfiles.d/daemon.conf').reasons).toEqual(['/usr/lib/tmpfiles.d/daemon.conf is the tmpfiles.d file whose line 1 creates /run/daemon-sock, which the workload uses']);
    expect(say('/var/lib/empty').reasons).toEqual(["/var/lib/empty is a directory the workload chdir'd into (traced: chdir by pid 7)"]);
    expect(say('/etc/passwd').reasons).toContain("/etc/passwd holds the passwd/group/shadow entries of user 'other', whom the workload switched to");
  });
});
