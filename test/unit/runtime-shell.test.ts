import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rootInit } from '../../src/core/bootable/init-scripts.js';
import { planRuntimeState } from '../../src/core/runtime/plan.js';
import { runtimeShell, runtimeShellLines } from '../../src/core/runtime/shell.js';
import { parseTmpfiles } from '../../src/core/runtime/tmpfiles.js';
import { parseUnitFile } from '../../src/core/runtime/unit-file.js';
import { tempDir } from '../helpers/tmp.js';

const actions = (text: string, unit?: string) =>
  planRuntimeState({
    tmpfiles: [{ file: '/usr/lib/tmpfiles.d/t.conf', lines: parseTmpfiles(text, '/usr/lib/tmpfiles.d/t.conf').lines }],
    units: unit === undefined ? [] : [{ name: 'app.service', unit: parseUnitFile(unit) }],
    users: [{ name: 'app', uid: 4242, gid: 4243 }],
    groups: [{ name: 'app', gid: 4243 }],
  }).actions;

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
const isStatic = BUSYBOX !== undefined && execFileSync('file', ['-L', BUSYBOX], { encoding: 'utf8' }).includes('statically linked');

describe('runtime state as sh lines', () => {
  it('gives one line per action with octal modes, numeric owners and quoted words', () => {
    const lines = runtimeShellLines(actions("d /run/app 2750 app app\nf \"/run/it's\" - - - - -100%%\\n\nL+ /run/l - - - - /x y\nz /var/log/app 0640 - app", '[Service]\nUser=app\nRuntimeDirectory=svc\n'));
    expect(lines).toEqual([
      "aim_dir /run/app 2750 4242:4243 2750 4242:4243 || echo 'aim: could not prepare /run/app'",
      "aim_file '/run/it'\\''s' 0644 0:0 - - keep '\\055100%%\\012' || echo 'aim: could not prepare /run/it'\\''s'",
      "aim_link /run/l '/x y' replace || echo 'aim: could not prepare /run/l'",
      "aim_dir /run/svc 0755 4242:4243 0755 4242:4243 || echo 'aim: could not prepare /run/svc'",
      "aim_adjust /var/log/app 0640 :4243 one || echo 'aim: could not prepare /var/log/app'",
    ]);
    expect(runtimeShell([])).toBe('');
  });

  it("runs in aim's init after /run and /tmp are mounted and before the entrypoint starts", () => {
    const script = rootInit(['/usr/bin/app'], actions('d /run/app 0750 app app'));
    const at = (s: string) => script.indexOf(s);
    expect(at('aim_dir /run/app 0750 4242:4243')).toBeGreaterThan(at('tmpfs /run'));
    expect(at('aim_dir /run/app')).toBeGreaterThan(at('tmpfs /tmp'));
    expect(at('aim_dir /run/app')).toBeGreaterThan(at('aim_dir() {'));
    expect(at('aim_dir /run/app')).toBeLessThan(at('aim_service &'));
    expect(rootInit(['/usr/bin/app'])).not.toContain('aim_dir');
  });

  it.skipIf(process.getuid?.() !== 0 || !isStatic)('does what the plan says when busybox runs it in the image root', async () => {
    const tmp = await tempDir('aim-runtime-sh-');
    try {
      const root = join(tmp.dir, 'root');
      for (const d of ['bin', 'run', 'var/lib/tree/sub', 'var/log']) await mkdir(join(root, d), { recursive: true });
      await copyFile(BUSYBOX!, join(root, 'bin/busybox'));
      await chmod(join(root, 'bin/busybox'), 0o755);
      await symlink('/run', join(root, 'var/run'));
      await writeFile(join(root, 'var/lib/tree/sub/f'), '');
      await writeFile(join(root, 'var/log/blocker'), '');
      const script = `B=/bin/busybox\n${runtimeShell(
        actions(
          'd /var/run/app 2750 app app\nf /run/app/flag 0640 app - - a%%b\\\\c\\001\nL /run/app/link - - - - /run/app/flag\nZ /var/lib/tree - app app\nd /var/log/blocker/x\nd /run/after',
          '[Service]\nUser=app\nStateDirectory=svc\nStateDirectoryMode=0700\n',
        ),
      )}`;
      const out = execFileSync('chroot', [root, '/bin/busybox', 'sh', '-c', script], { encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
      expect(out).toBe('aim: could not prepare /var/log/blocker/x\n');
      const app = await lstat(join(root, 'run/app'));
      expect([app.isDirectory(), app.mode & 0o7777, app.uid, app.gid]).toEqual([true, 0o2750, 4242, 4243]);
      expect(await readFile(join(root, 'run/app/flag'))).toEqual(Buffer.from('a%b\\c\x01'));
      expect((await lstat(join(root, 'run/app/flag'))).mode & 0o7777).toBe(0o640);
      expect(await readlink(join(root, 'run/app/link'))).toBe('/run/app/flag');
      expect((await lstat(join(root, 'var/lib/tree/sub/f'))).uid).toBe(4242);
      const svc = await lstat(join(root, 'var/lib/svc'));
      expect([svc.mode & 0o7777, svc.uid]).toEqual([0o700, 4242]);
      // a failing line does not stop the rest
      expect((await lstat(join(root, 'run/after'))).isDirectory()).toBe(true);
    } finally {
      await tmp.cleanup();
    }
  });
});
