import { describe, expect, it } from 'vitest';
import { expandSpecifiers, parseTmpfiles, selectTmpfiles } from '../../src/core/runtime/tmpfiles.js';
import { execStartPrograms, listValue, mergeUnitFiles, parseUnitFile, selectDropIns, serviceRuntime, unitName } from '../../src/core/runtime/unit-file.js';
import { splitWords } from '../../src/core/runtime/words.js';

describe('tmpfiles.d lines', () => {
  it('reads type, modifiers, path, mode, owner, age and argument; "-" leaves a field out', () => {
    const { lines, problems } = parseTmpfiles(
      [
        '# comment',
        '',
        'd /run/mysqld 0755 mysql root -',
        'D! /run/lock 1777 - - 10d',
        'L+ /etc/mtab - - - - ../proc/self/mounts',
        'f~ /etc/x 0600 - - - aGVsbG8=',
        'z /var/log/app :0640 root adm',
        'f "/run/with space" ~0644 - - - line\\none',
      ].join('\n'),
      '/usr/lib/tmpfiles.d/x.conf',
    );
    expect(problems).toEqual([]);
    expect(lines.map((l) => [l.line, l.type, l.modifiers, l.path])).toEqual([
      [3, 'd', '', '/run/mysqld'],
      [4, 'D', '!', '/run/lock'],
      [5, 'L', '+', '/etc/mtab'],
      [6, 'f', '~', '/etc/x'],
      [7, 'z', '', '/var/log/app'],
      [8, 'f', '', '/run/with space'],
    ]);
    expect(lines[0]).toMatchObject({ mode: { value: 0o755, masked: false, createOnly: false }, user: 'mysql', group: 'root' });
    expect(lines[0]!.age).toBeUndefined();
    expect(lines[1]).toMatchObject({ mode: { value: 0o1777 }, age: '10d' });
    expect(lines[1]!.user).toBeUndefined();
    expect(lines[2]!.argument).toBe('../proc/self/mounts');
    expect(lines[4]!.mode).toEqual({ value: 0o640, masked: false, createOnly: true });
    expect(lines[5]!.mode).toEqual({ value: 0o644, masked: true, createOnly: false });
    expect(lines[5]!.argument).toBe('line\none');
  });

  it('reports unreadable lines as problems and goes on', () => {
    const { lines, problems } = parseTmpfiles('d /ok\nd\n? /x\nd /y 9999\nd "/open\nd /fine', 'f.conf');
    expect(lines.map((l) => l.path)).toEqual(['/ok', '/fine']);
    expect(problems.map((p) => p.line)).toEqual([2, 3, 4, 5]);
  });

  it('expands the machine-independent specifiers and refuses the others', () => {
    expect(expandSpecifiers('%t/foo-%%-%S')).toBe('/run/foo-%-/var/lib');
    expect(() => expandSpecifiers('/run/%m')).toThrow(/%m/);
  });

  it('selects files by name, /etc over /run over /usr/lib, in file-name order', () => {
    expect(
      selectTmpfiles([
        '/usr/lib/tmpfiles.d/b.conf',
        '/usr/lib/tmpfiles.d/a.conf',
        '/etc/tmpfiles.d/b.conf',
        '/run/tmpfiles.d/c.conf',
        '/usr/lib/tmpfiles.d/c.conf',
        '/usr/lib/tmpfiles.d/README',
        '/opt/tmpfiles.d/z.conf',
      ]),
    ).toEqual(['/usr/lib/tmpfiles.d/a.conf', '/etc/tmpfiles.d/b.conf', '/run/tmpfiles.d/c.conf']);
  });
});

describe('unit files', () => {
  const REDIS = `[Unit]
Description=Advanced key-value store

[Service]
Type=notify
ExecStart=/usr/bin/redis-server /etc/redis/redis.conf --supervised systemd --daemonize no
User=redis
Group=redis
RuntimeDirectory=redis
RuntimeDirectoryMode=2755
# a comment
ReadWritePaths=-/var/lib/redis
`;

  it('reads sections, repeated keys, comments and continuation lines', () => {
    const u = parseUnitFile(`${REDIS}ExecStartPre=/bin/echo a \\\n  ; comment inside\n  b\n`);
    expect(u.get('Service')?.get('User')).toEqual(['redis']);
    expect(u.get('Service')?.get('ExecStartPre')).toEqual(['/bin/echo a  b']);
    expect(u.get('Unit')?.get('Description')).toEqual(['Advanced key-value store']);
  });

  it('adds drop-ins in order; an empty assignment clears a list', () => {
    const merged = mergeUnitFiles(parseUnitFile(REDIS), [parseUnitFile('[Service]\nRuntimeDirectory=\nRuntimeDirectory=a b\n'), parseUnitFile('[Service]\nRuntimeDirectory=c\nUser=other\n')]);
    expect(listValue(merged, 'Service', 'RuntimeDirectory')).toEqual(['a', 'b', 'c']);
    expect(serviceRuntime(merged, 'redis-server.service').user).toBe('other');
  });

  it('gives the directories with mode, symlinks and specifiers, and refuses paths out of their base', () => {
    const u = parseUnitFile(`[Service]
RuntimeDirectory=%N sub/dir:alias
StateDirectory=foo
StateDirectoryMode=0700
LogsDirectory=../escape /abs
CacheDirectory=x%m
User=u
`);
    const rt = serviceRuntime(u, 'web@one.service');
    expect(rt.directories).toEqual([
      { setting: 'RuntimeDirectory', path: '/run/web@one', mode: 0o755, links: [] },
      { setting: 'RuntimeDirectory', path: '/run/sub/dir', mode: 0o755, links: ['/run/alias'] },
      { setting: 'StateDirectory', path: '/var/lib/foo', mode: 0o700, links: [] },
    ]);
    expect(rt.problems).toHaveLength(3);
    expect(rt.user).toBe('u');
  });

  it('names the programs ExecStart= runs, through prefixes and sh -c … exec', () => {
    const u = parseUnitFile(`[Service]
ExecStart=-/usr/bin/a --flag
ExecStart=!!b
ExecStart=/usr/bin/python3 -u /usr/sbin/app --x
ExecStart=/bin/sh -c "set -f; [ ! -e /x ] && VAR= || \\
 VAR=\`/x\`; exec /usr/sbin/mariadbd $OPTS"
`);
    expect(execStartPrograms(u)).toEqual(['/usr/bin/a', 'b', '/usr/sbin/app', '/usr/sbin/mariadbd']);
  });

  it('selects drop-ins by file name, template ones first, higher directories winning', () => {
    expect(
      selectDropIns('x@a.service', [
        '/usr/lib/systemd/system/x@a.service.d/10-a.conf',
        '/etc/systemd/system/x@a.service.d/10-a.conf',
        '/usr/lib/systemd/system/x@.service.d/50-t.conf',
        '/usr/lib/systemd/system/x@a.service.d/05-b.conf',
        '/usr/lib/systemd/system/y.service.d/00.conf',
      ]),
    ).toEqual(['/usr/lib/systemd/system/x@.service.d/50-t.conf', '/usr/lib/systemd/system/x@a.service.d/05-b.conf', '/etc/systemd/system/x@a.service.d/10-a.conf']);
    expect(unitName('mariadb')).toBe('mariadb.service');
    expect(unitName('a.socket')).toBe('a.socket');
  });
});

describe('word splitting', () => {
  it('splits words with quotes and C escapes, leaving the rest raw', () => {
    expect(splitWords(`a "b c" 'd\\te' f\\x41 rest of "it"`, 4)).toEqual({ words: ['a', 'b c', 'd\te', 'fA'], rest: 'rest of "it"' });
    expect(() => splitWords('"open')).toThrow(/unclosed/);
  });
});
