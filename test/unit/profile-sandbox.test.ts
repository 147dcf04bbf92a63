import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProfileError } from '../../src/core/profile/errors.js';
import { OutputTail } from '../../src/core/profile/output-tail.js';
import { validateProbe } from '../../src/core/profile/probes.js';
import { listeningPorts, namespaceMembers, pidNamespaceOf, processTree, readProcStat } from '../../src/core/profile/processes.js';
import { resolveInRoot } from '../../src/lib/resolve-in-root.js';
import { runSandboxed } from '../../src/core/profile/sandbox.js';
import { ConfigError, InputError, PermissionError } from '../../src/lib/errors.js';
import { tempDir } from '../helpers/tmp.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('runSandboxed checks before it starts anything', () => {
  it('needs root', async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    const e = await runSandboxed({ root: '/nonexistent', workDir: '/nonexistent', run: 'true' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PermissionError);
    expect((e as PermissionError).hint).toMatch(/root/);
  });

  it.each([
    [{ run: '  ' }, /--run: empty command/],
    [{ run: [] as string[] }, /--run: empty command/],
    [{ run: 'x', readyPort: 70000 }, /--ready-port 70000/],
    [{ run: 'x', probes: [{ kind: 'http' as const, url: 'ftp://127.0.0.1/' }] }, /only http and https/],
    [{ run: 'x', probes: [{ kind: 'http' as const, url: 'not a url' }] }, /not a URL/],
    [{ run: 'x', probes: [{ kind: 'exec' as const, command: '' }] }, /empty command/],
  ])('rejects bad options: %o', async (options, message) => {
    vi.spyOn(process, 'getuid').mockReturnValue(0);
    const e = await runSandboxed({ root: '/nonexistent', workDir: '/nonexistent', ...options }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as Error).message).toMatch(message);
  });

  const hasTools = ['strace', 'unshare', 'nsenter', 'setpriv', 'ip'].every((t) => {
    try {
      execFileSync('sh', ['-c', `command -v ${t} || test -x /usr/sbin/${t} || test -x /sbin/${t}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });

  it.skipIf(!hasTools)('refuses a root whose mount point is a symlink (a mount would follow it out of the image)', async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(0);
    const { dir, cleanup } = await tempDir();
    try {
      await mkdir(join(dir, 'root'));
      await symlink('/', join(dir, 'root/proc'));
      const e = await runSandboxed({ root: join(dir, 'root'), workDir: join(dir, 'work'), run: 'true' }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).code).toBe('E_PROFILE_ROOT');
      expect((e as Error).message).toContain('/proc in the image is a symlink');
    } finally {
      await cleanup();
    }
  });

  it.skipIf(!hasTools)('refuses the host root and missing roots', async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(0);
    await expect(runSandboxed({ root: '/', workDir: '/tmp', run: 'true' })).rejects.toThrow(/cannot be the host's \//);
    await expect(runSandboxed({ root: '/nonexistent-aim-root', workDir: '/tmp', run: 'true' })).rejects.toThrow(ConfigError);
  });

  it('accepts good probes', () => {
    expect(() => validateProbe({ kind: 'http', url: 'http://127.0.0.1:8080/health' })).not.toThrow();
    expect(() => validateProbe({ kind: 'exec', command: 'redis-cli ping' })).not.toThrow();
  });
});

describe('resolveInRoot', () => {
  it('follows symlinks as a chroot would: absolute targets restart at the root, .. stops there', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const root = join(dir, 'root');
      await mkdir(join(root, 'usr/bin'), { recursive: true });
      await mkdir(join(root, 'etc/alternatives'), { recursive: true });
      await writeFile(join(root, 'usr/bin/dash'), '');
      await symlink('usr/bin', join(root, 'bin')); // merged /usr
      await symlink('dash', join(root, 'usr/bin/sh'));
      await symlink('/etc/alternatives/awk', join(root, 'usr/bin/awk'));
      await symlink('/usr/bin/dash', join(root, 'etc/alternatives/awk'));
      await symlink('../../../../../../usr/bin/dash', join(root, 'usr/bin/escape'));
      await symlink('loop2', join(root, 'usr/bin/loop1'));
      await symlink('loop1', join(root, 'usr/bin/loop2'));
      await symlink('/etc/passwd', join(root, 'usr/bin/host-target')); // exists on the host, not in the image
      expect(await resolveInRoot(root, '/bin/sh')).toBe('/usr/bin/dash');
      expect(await resolveInRoot(root, '/bin/awk')).toBe('/usr/bin/dash');
      expect(await resolveInRoot(root, '/usr/bin/escape')).toBe('/usr/bin/dash');
      expect(await resolveInRoot(root, '/usr/bin/dash')).toBe('/usr/bin/dash');
      expect(await resolveInRoot(root, '/usr/bin/loop1')).toBeUndefined();
      expect(await resolveInRoot(root, '/usr/bin/host-target')).toBeUndefined();
      expect(await resolveInRoot(root, '/bin/missing')).toBeUndefined();
    } finally {
      await cleanup();
    }
  });
});

describe('OutputTail and ProfileError', () => {
  it('keeps the last lines within its limit', () => {
    const tail = new OutputTail(64);
    for (let i = 0; i < 100; i++) tail.push(`line ${i}\n`);
    expect(tail.text(3)).toBe('line 97\nline 98\nline 99');
    expect(tail.text(1000).split('\n').length).toBeLessThan(20);
    expect(new OutputTail().text()).toBe('');
  });

  it('puts the workload output tail in the message', () => {
    const e = new ProfileError('E_PROFILE_NOT_READY', 'port 80 was not listening after 1000 ms', 'nginx: [emerg] bind() failed\n');
    expect(e.message).toBe('port 80 was not listening after 1000 ms\n--- last output of the workload ---\nnginx: [emerg] bind() failed');
    expect(e.outputTail).toBe('nginx: [emerg] bind() failed');
    expect(e.hint).toMatch(/ready-port/);
    expect(e.exitCode).toBe(6);
    expect(new ProfileError('E_PROFILE_EXITED', 'exited', '').message).toBe('exited (no output)');
  });
});

describe('/proc readers', () => {
  it('see this process, its namespace and its listening sockets', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      expect(await listeningPorts(process.pid)).toContain(port);
      expect(await processTree(process.pid)).toContain(process.pid);
      expect(await readProcStat(process.pid)).toMatchObject({ pid: process.pid, ppid: process.ppid });
      const ns = await pidNamespaceOf(process.pid);
      expect(ns).toMatch(/^pid:\[\d+\]$/);
      expect(await namespaceMembers(ns!)).toContain(process.pid);
    } finally {
      server.close();
    }
    expect(await readProcStat(2 ** 22 + 1)).toBeUndefined();
  });
});
