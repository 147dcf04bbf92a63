import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, realpath, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSandboxed } from '../../src/core/profile/sandbox.js';
import { planRuntimeState } from '../../src/core/runtime/plan.js';
import { parseTmpfiles } from '../../src/core/runtime/tmpfiles.js';
import { parseUnitFile } from '../../src/core/runtime/unit-file.js';
import { RecordingReporter } from '../../src/lib/reporter.js';
import { tempDir } from '../helpers/tmp.js';

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
const CAN_RUN =
  process.getuid?.() === 0 &&
  BUSYBOX !== undefined &&
  execFileSync('file', ['-L', BUSYBOX], { encoding: 'utf8' }).includes('statically linked') &&
  ['strace', 'unshare', 'nsenter', 'setpriv'].every((t) => ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, t))));

describe.skipIf(!CAN_RUN)('runtime state in the profile sandbox', () => {
  it('exists before the workload starts, on the fresh /run and /tmp and in the root, and never on the host', async () => {
    const tmp = await tempDir('aim-runtime-sandbox-');
    const name = `aim-rt-${process.pid}`;
    try {
      const base = await realpath(tmp.dir);
      const root = join(base, 'root');
      await mkdir(join(root, 'bin'), { recursive: true });
      await mkdir(join(root, 'var/lib'), { recursive: true });
      await copyFile(BUSYBOX!, join(root, 'bin/busybox'));
      await chmod(join(root, 'bin/busybox'), 0o755);
      for (const a of ['sh', 'stat', 'cat', 'readlink']) await symlink('busybox', join(root, 'bin', a));
      await symlink('/run', join(root, 'var/run'));
      await writeFile(join(root, 'var/lib/old'), 'x');
      const plan = planRuntimeState({
        tmpfiles: [{ file: '/usr/lib/tmpfiles.d/t.conf', lines: parseTmpfiles(`d /var/run/${name} 0750 app app\nf /tmp/${name}.flag 0600 - - - ready\nz /var/lib/old 0604 app`, '/usr/lib/tmpfiles.d/t.conf').lines }],
        units: [{ name: 'app.service', unit: parseUnitFile(`[Service]\nUser=app\nRuntimeDirectory=${name}/sock:${name}-link\nStateDirectory=app\n`) }],
        users: [{ name: 'app', uid: 4242, gid: 4243 }],
        groups: [{ name: 'app', gid: 4243 }],
      });
      const reporter = new RecordingReporter();
      const result = await runSandboxed({
        root,
        workDir: join(base, 'work'),
        run: `stat -c '%n %a %u:%g' /run/${name} /run/${name}/sock /var/lib/app /var/lib/old; cat /tmp/${name}.flag; echo; readlink /run/${name}-link`,
        runtime: plan.actions,
        durationMs: 10_000,
        reporter,
      });
      expect(result.outputTail.split('\n')).toEqual([
        `/run/${name} 750 4242:4243`,
        `/run/${name}/sock 755 4242:4243`,
        '/var/lib/app 755 4242:4243',
        '/var/lib/old 604 4242:0',
        'ready',
        `/run/${name}/sock`,
      ]);
      expect(reporter.warnings()).toEqual([]);
      expect(reporter.events).toContainEqual({ type: 'info', message: `runtime state: ${plan.actions.length} of ${plan.actions.length} action(s) applied before the workload starts` });
      // the workload's trace does not hold aim's own writes
      expect(result.trace.paths.get(`/run/${name}`)?.wrote ?? false).toBe(false);
      expect(existsSync(`/run/${name}`)).toBe(false);
      expect(existsSync(`/tmp/${name}.flag`)).toBe(false);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(base);
    } finally {
      await tmp.cleanup();
    }
  }, 60_000);
});
