import { describe, expect, it } from 'vitest';
import {
  compileGlob,
  defaultLibraryDirs,
  envCommand,
  expandSearchElement,
  matchesGlob,
  parseLdSoConfText,
  parseNsswitch,
  parseShebang,
} from '../../src/core/closure/index.js';

describe('compileGlob', () => {
  it.each([
    ['/usr/share/doc/**', '/usr/share/doc', true],
    ['/usr/share/doc/**', '/usr/share/doc/nginx/copyright', true],
    ['/usr/share/doc/**', '/usr/share/docs', false],
    ['/usr/lib/**/*.pyc', '/usr/lib/x.pyc', true],
    ['/usr/lib/**/*.pyc', '/usr/lib/python3/a/b/x.pyc', true],
    ['/usr/lib/**/*.pyc', '/usr/lib/python3/x.py', false],
    ['*.pyc', '/a/b/c.pyc', true],
    ['*.pyc', '/c.pyc', true],
    ['**/__pycache__/**', '/usr/lib/python3.11/__pycache__/os.pyc', true],
    ['/usr/lib/python3*', '/usr/lib/python3.11', true],
    ['/usr/lib/python3*', '/usr/lib/python3.11/os.py', false],
    ['/etc/?sh', '/etc/ssh', true],
    ['/etc/?sh', '/etc/s/h', false],
    ['/lib/libc.so.[0-9]', '/lib/libc.so.6', true],
    ['/lib/libc.so.[!0-9]', '/lib/libc.so.6', false],
    ['/lib/libc.so.[^0-9]', '/lib/libc.so.x', true],
    ['/a/[]]', '/a/]', true],
    ['/a/[', '/a/[', true],
    ['/a/\\*', '/a/*', true],
    ['/a/\\*', '/a/b', false],
    ['/a.b', '/a.b', true],
    ['/a.b', '/axb', false],
    ['/a/*', '/a/.hidden', true],
  ])('%s vs %s → %s', (pattern, path, expected) => {
    expect(matchesGlob(compileGlob(pattern), path)).toBe(expected);
  });

  it('splits the literal directory and marks directory-only patterns', () => {
    expect(compileGlob('/usr/lib/python3*/')).toMatchObject({ literalDir: '/usr/lib', rest: ['python3*'], dirOnly: true, absolute: '/usr/lib/python3*' });
    expect(compileGlob('/etc/localtime')).toMatchObject({ literalDir: '/etc', rest: ['localtime'], dirOnly: false });
    expect(compileGlob('*.pyc')).toMatchObject({ literalDir: '/', absolute: '/**/*.pyc' });
    expect(compileGlob('**/**/x').absolute).toBe('/**/x');
  });

  // A backtracking matcher needs ~40^6 steps here and would never finish; the test's own timeout catches it.
  it('stays linear on long paths with many stars', { timeout: 5000 }, () => {
    const g = compileGlob('/**/a*a*a*a*a*a*b');
    const path = `/${'a'.repeat(40)}/${'a'.repeat(40)}`;
    expect(matchesGlob(g, path)).toBe(false);
  });
});

describe('parseLdSoConfText', () => {
  it('reads directories, include globs and comments as ldconfig does', () => {
    expect(parseLdSoConfText('include /etc/ld.so.conf.d/*.conf other/*.conf\n# comment\n/usr/local/lib # trailing\n\n/opt/a:/opt/b, /opt/c\nhwcap 0 nosegneg\n/opt/d/\nrelative/dir\n/opt/e=libc5\n')).toEqual([
      { include: ['/etc/ld.so.conf.d/*.conf', 'other/*.conf'] },
      { dir: '/usr/local/lib' },
      { dir: '/opt/a' },
      { dir: '/opt/b' },
      { dir: '/opt/c' },
      { dir: '/opt/d' },
      { dir: '/opt/e' },
    ]);
  });
});

describe('expandSearchElement', () => {
  const x64 = { class: 64, machine: 'x86-64', endian: 'le' } as const;
  it('expands $ORIGIN, ${ORIGIN}, $LIB and $PLATFORM', () => {
    expect(expandSearchElement('$ORIGIN/../lib', '/opt/app/bin', x64)).toEqual(['/opt/app/bin/../lib']);
    expect(expandSearchElement('${ORIGIN}/plugins', '/opt/app', x64)).toEqual(['/opt/app/plugins']);
    expect(expandSearchElement('/opt/$LIB', '/x', x64)).toEqual(['/opt/lib/x86_64-linux-gnu', '/opt/lib64', '/opt/lib']);
    expect(expandSearchElement('/opt/$PLATFORM/lib', '/x', x64)).toContain('/opt/x86_64/lib');
    // $ORIGINAL is not $ORIGIN: left as is, it is a relative element and dropped.
    expect(expandSearchElement('$ORIGINAL/x', '/o', x64)).toEqual([]);
    expect(expandSearchElement('', '/o', x64)).toEqual([]);
    expect(expandSearchElement('lib', '/o', x64)).toEqual([]);
  });

  it('orders the built-in directories by machine', () => {
    expect(defaultLibraryDirs({ class: 64, machine: 'x86-64', endian: 'le' }, false)).toEqual([
      '/lib/x86_64-linux-gnu',
      '/usr/lib/x86_64-linux-gnu',
      '/lib64',
      '/usr/lib64',
      '/lib',
      '/usr/lib',
    ]);
    expect(defaultLibraryDirs({ class: 32, machine: 'i386', endian: 'le' }, false).slice(0, 4)).toEqual(['/lib/i386-linux-gnu', '/usr/lib/i386-linux-gnu', '/lib32', '/usr/lib32']);
    expect(defaultLibraryDirs({ class: 64, machine: 'aarch64', endian: 'le' }, true)).toEqual([
      '/lib/aarch64-linux-gnu',
      '/usr/lib/aarch64-linux-gnu',
      '/lib64',
      '/usr/lib64',
      '/lib',
      '/usr/lib',
      '/usr/local/lib',
    ]);
  });
});

describe('parseShebang and envCommand', () => {
  it.each([
    ['#!/bin/sh\necho', { interpreter: '/bin/sh' }],
    ['#! /usr/bin/perl -w -T\n', { interpreter: '/usr/bin/perl', arg: '-w -T' }],
    ['#!/usr/bin/env python3\r\n', { interpreter: '/usr/bin/env', arg: 'python3' }],
    ['#!\t/bin/bash', { interpreter: '/bin/bash' }],
  ])('%j', (text, expected) => {
    expect(parseShebang(Buffer.from(text))).toEqual(expected);
  });

  it('ignores files without "#!"', () => {
    expect(parseShebang(Buffer.from('\x7fELF'))).toBeUndefined();
    expect(parseShebang(Buffer.from('#!\n'))).toBeUndefined();
    expect(parseShebang(Buffer.from('# !/bin/sh'))).toBeUndefined();
  });

  it.each([
    ['python3', 'python3'],
    ['-S python3 -u', 'python3'],
    ['-Spython3 -u', 'python3'],
    ['-i PATH=/x node', 'node'],
    ['-u HOME ruby', 'ruby'],
    ['-- bash', 'bash'],
    ['-i', undefined],
    [undefined, undefined],
  ])('env %s → %s', (arg, expected) => {
    expect(envCommand(arg)).toBe(expected);
  });
});

describe('parseNsswitch', () => {
  it('reads services and skips action lists and comments', () => {
    const m = parseNsswitch('# comment\npasswd:  files systemd\nhosts: files mdns4_minimal [NOTFOUND=return] dns [!UNAVAIL = return] myhostname # x\nnetgroup: nis\n\nbad line\n');
    expect([...m]).toEqual([
      ['passwd', ['files', 'systemd']],
      ['hosts', ['files', 'mdns4_minimal', 'dns', 'myhostname']],
      ['netgroup', ['nis']],
    ]);
  });
});
