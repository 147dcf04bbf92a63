import { describe, expect, it } from 'vitest';
import { lookupImagePath, resolveImagePath } from '../../src/core/analyze/resolve.js';
import type { Entry } from '../../src/core/model/entry.js';

const dir = (path: string): Entry => ({ path, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
const file = (path: string, blob = 'b'.repeat(64)): Entry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 1, blob });
const link = (path: string, target: string): Entry => ({ path, type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 0, target });

function image(list: Entry[]): Map<string, Entry> {
  return new Map(list.map((e) => [e.path, e]));
}

const entries = image([
  dir('/'),
  dir('/usr'),
  dir('/usr/lib'),
  dir('/usr/lib64'),
  dir('/usr/lib/x86_64-linux-gnu'),
  dir('/usr/share'),
  dir('/usr/share/doc'),
  dir('/usr/share/doc/libc6'),
  dir('/etc'),
  file('/usr/lib/x86_64-linux-gnu/libc.so.6', 'c'.repeat(64)),
  file('/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', 'd'.repeat(64)),
  file('/usr/lib/os-release'),
  file('/usr/share/doc/libc6/copyright'),
  link('/lib', 'usr/lib'),
  link('/lib64', 'usr/lib64'),
  link('/usr/lib64/ld-linux-x86-64.so.2', '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'),
  link('/etc/os-release', '../usr/lib/os-release'),
  link('/etc/abs', '/usr/lib'),
  link('/etc/host-only', '/etc/passwd'),
  link('/usr/share/doc/libc-bin', 'libc6'),
  link('/loop-a', 'loop-b'),
  link('/loop-b', '/loop-a'),
  link('/self', 'self'),
  link('/dangling', 'nowhere'),
  link('/empty', ''),
  { path: '/usr/lib/hard', type: 'hardlink', mode: 0o644, uid: 0, gid: 0, mtime: 0, target: '/usr/lib/x86_64-linux-gnu/libc.so.6' },
]);

describe('resolveImagePath', () => {
  it.each([
    ['/', '/'],
    ['/usr/lib', '/usr/lib'],
    ['/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6'],
    ['/lib64/ld-linux-x86-64.so.2', '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'],
    ['/etc/os-release', '/usr/lib/os-release'],
    ['/etc/abs/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6'],
    ['/usr/share/doc/libc-bin/copyright', '/usr/share/doc/libc6/copyright'],
    ['/usr/../../../usr/./lib//x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6'],
    // ".." after a symlinked directory goes up from where the link leads, as the kernel does.
    ['/lib/../lib64', '/usr/lib64'],
    ['usr/lib', '/usr/lib'],
  ])('%s → %s', (path, expected) => {
    expect(resolveImagePath(entries, path)).toBe(expected);
  });

  it.each([
    ['/missing'],
    ['/usr/lib/missing/x'],
    ['/etc/host-only'],
    ['/loop-a'],
    ['/self'],
    ['/dangling'],
    ['/empty'],
    ['/usr/lib/x86_64-linux-gnu/libc.so.6/x'],
    ['/usr/lib/hard/x'],
  ])('%s does not resolve', (path) => {
    expect(resolveImagePath(entries, path)).toBeUndefined();
  });

  it('stops at the last component when asked (lstat)', () => {
    expect(resolveImagePath(entries, '/lib64/ld-linux-x86-64.so.2', { followFinal: false })).toBe('/usr/lib64/ld-linux-x86-64.so.2');
    expect(resolveImagePath(entries, '/lib', { followFinal: false })).toBe('/lib');
    expect(resolveImagePath(entries, '/dangling', { followFinal: false })).toBe('/dangling');
  });

  it('follows at most 40 symlinks', () => {
    const chain: Entry[] = [dir('/'), file('/end')];
    for (let i = 0; i < 41; i++) chain.push(link(`/l${i}`, i === 40 ? '/end' : `l${i + 1}`));
    const m = image(chain);
    expect(resolveImagePath(m, '/l1')).toBe('/end'); // 40 links
    expect(resolveImagePath(m, '/l0')).toBeUndefined(); // 41 links
    expect(resolveImagePath(m, '/l0', { maxHops: 41 })).toBe('/end');
  });

  it('looks up entries through symlinks and hardlinks', () => {
    expect(lookupImagePath(entries, '/lib/x86_64-linux-gnu/libc.so.6')?.blob).toBe('c'.repeat(64));
    expect(lookupImagePath(entries, '/usr/lib/hard')?.path).toBe('/usr/lib/x86_64-linux-gnu/libc.so.6');
    expect(lookupImagePath(entries, '/nope')).toBeUndefined();
  });
});
