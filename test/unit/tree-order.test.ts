import { describe, expect, it } from 'vitest';
import { withoutAimDir } from '../../src/core/bootable/root-tree.js';
import { safeTreeEntries } from '../../src/core/export/tree-order.js';
import type { Entry } from '../../src/core/model/entry.js';
import { RecordingReporter } from '../../src/lib/reporter.js';

const base = { mode: 0o755, uid: 0, gid: 0, mtime: 0 };
const dir = (path: string): Entry => ({ path, type: 'dir', ...base });
const file = (path: string, blob = 'b'.repeat(64)): Entry => ({ path, type: 'file', ...base, mode: 0o644, size: 1, blob });
const symlink = (path: string, target: string): Entry => ({ path, type: 'symlink', ...base, mode: 0o777, target });
const hardlink = (path: string, target: string): Entry => ({ path, type: 'hardlink', ...base, target });

describe('safeTreeEntries', () => {
  it('orders directories before what they hold and keeps a well-formed image as it is', () => {
    const entries = [file('/etc/passwd'), dir('/etc'), dir('/'), symlink('/bin', 'usr/bin'), dir('/usr'), dir('/usr/bin'), file('/usr/bin/a'), hardlink('/usr/bin/b', '/usr/bin/a')];
    expect(safeTreeEntries(entries).map((e) => e.path)).toEqual(['/', '/bin', '/etc', '/etc/passwd', '/usr', '/usr/bin', '/usr/bin/a', '/usr/bin/b']);
    expect(safeTreeEntries(entries).find((e) => e.path === '/usr/bin/b')).toEqual(hardlink('/usr/bin/b', '/usr/bin/a'));
  });

  it.each([
    ['an entry below a symlink listed before it', [dir('/'), symlink('/b', '/elsewhere'), file('/b/x')], /"\/b\/x" lies below "\/b", which is a symlink \(-> \/elsewhere\)/],
    ['an entry below a symlink whatever the order given', [dir('/'), file('/b/x'), symlink('/b', '/elsewhere')], /"\/b\/x" lies below "\/b", which is a symlink/],
    ['an entry below a regular file', [dir('/'), file('/a'), file('/a/x')], /"\/a\/x" lies below "\/a", which is a regular file/],
    ['an entry below a fifo', [dir('/'), { path: '/p', type: 'fifo', ...base } as Entry, file('/p/x')], /below "\/p", which is a fifo/],
    ['an entry without its directory', [dir('/'), file('/a/x')], /"\/a\/x" has no parent directory "\/a"/],
    ['a path listed twice', [dir('/'), file('/a'), symlink('/a', '/x')], /"\/a" is listed twice/],
    ['a path with ..', [dir('/'), file('/a/../x')], /not a canonical/],
    ['a hard link to a missing entry', [dir('/'), hardlink('/h', '/gone')], /"\/h" is a hard link to "\/gone", which is not in the image/],
    ['a hard link to a directory', [dir('/'), dir('/d'), hardlink('/h', '/d')], /which is a directory/],
    ['a hard link to a later file', [dir('/'), hardlink('/a', '/z'), file('/z')], /"\/a" is a hard link to "\/z", which comes after it/],
    ['a root that is not a directory', [symlink('/', '/x')], /root "\/" is a symlink/],
  ])('refuses %s, naming the entries', (_, entries, message) => {
    expect(() => safeTreeEntries(entries)).toThrow(message);
    try {
      safeTreeEntries(entries);
    } catch (e) {
      expect(e).toMatchObject({ code: 'E_UNSAFE_MANIFEST', exitCode: 8 });
    }
  });

  it('turns a hard link to a symlink, fifo or device into a copy (a naive link() could follow the symlink)', () => {
    const out = safeTreeEntries([dir('/'), symlink('/l', '/etc/shadow'), hardlink('/m', '/l'), { path: '/f', type: 'fifo', ...base }, hardlink('/g', '/f')]);
    expect(out.find((e) => e.path === '/m')).toEqual({ ...symlink('/l', '/etc/shadow'), path: '/m' });
    expect(out.find((e) => e.path === '/g')).toMatchObject({ type: 'fifo' });
    expect(out.some((e) => e.type === 'hardlink')).toBe(false);
  });

  it('resolves a chain of hard links to its file', () => {
    const out = safeTreeEntries([dir('/'), file('/a'), hardlink('/b', '/a'), hardlink('/c', '/b')]);
    expect(out.find((e) => e.path === '/c')).toEqual(hardlink('/c', '/a'));
  });
});

describe('withoutAimDir', () => {
  it('drops the image\'s /.aim tree with a warning; hard links into it become the file', () => {
    const reporter = new RecordingReporter();
    const entries = [dir('/'), dir('/.aim'), file('/.aim/init', 'i'.repeat(64)), symlink('/.aim/ln', '/etc'), dir('/bin'), hardlink('/bin/a', '/.aim/init'), hardlink('/bin/b', '/.aim/init'), hardlink('/bin/c', '/.aim/ln'), file('/bin/d')];
    const out = withoutAimDir(entries, reporter);
    expect(out.map((e) => e.path)).toEqual(['/', '/bin', '/bin/a', '/bin/b', '/bin/c', '/bin/d']);
    expect(out.find((e) => e.path === '/bin/a')).toEqual({ ...file('/.aim/init', 'i'.repeat(64)), path: '/bin/a', mode: 0o644 });
    expect(out.find((e) => e.path === '/bin/b')).toEqual(hardlink('/bin/b', '/bin/a'));
    expect(out.find((e) => e.path === '/bin/c')).toEqual({ ...symlink('/.aim/ln', '/etc'), path: '/bin/c' });
    expect(safeTreeEntries(out)).toHaveLength(out.length);
    expect(reporter.warnings()).toEqual([expect.objectContaining({ code: 'W_AIM_DIR_REPLACED', message: expect.stringContaining('a directory of 2 entries') })]);
  });

  it('replaces a symlink /.aim and says where it pointed; an image without /.aim is unchanged and silent', () => {
    const reporter = new RecordingReporter();
    expect(withoutAimDir([dir('/'), symlink('/.aim', '../..')], reporter).map((e) => e.path)).toEqual(['/']);
    expect(reporter.warnings()[0]!.message).toContain('a symlink to ../..');
    const quiet = new RecordingReporter();
    const plain = [dir('/'), dir('/.aimless'), file('/.aimless/x')];
    expect(withoutAimDir(plain, quiet)).toEqual(plain);
    expect(quiet.warnings()).toEqual([]);
  });
});
