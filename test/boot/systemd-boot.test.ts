import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { goldTar } from '../helpers/gold.js';
import { kernelDebDir } from '../helpers/kernel.js';
import { tempDir } from '../helpers/tmp.js';
import { startVm, withConsole } from './helpers/qemu.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;

beforeAll(async () => {
  tmp = await tempDir('aim-boot-systemd-');
  repo = join(tmp.dir, 'repo');
  for (const args of [['repo', 'init'], ['image', 'import', await goldTar('systemd'), '--tag', 'gold/systemd:1'], ['core', 'kernel', '--deb-dir', kernelDebDir]]) {
    const r = await aim([...args, '--repo', repo]);
    expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}`).toBe(0);
  }
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('--init systemd', () => {
  it('boots the image\'s own systemd from aim\'s initramfs', async () => {
    const res = await aim<{ artifacts: { path: string }[] }>(['build', 'gold/systemd:1', '--format', 'raw', '--init', 'systemd', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, 'raw'), '--repo', repo]);
    expect(res.exitCode, res.stderr).toBe(0);
    const vm = join(tmp.dir, 'vm');
    await mkdir(vm);
    const machine = await startVm({ dir: vm, disk: { path: res.json.artifacts[0]!.path, format: 'raw' }, guestPort: 80, maxSeconds: 130 });
    try {
      await withConsole(machine, async () => {
        const seen = await machine.waitForConsole(/Welcome to .*Debian GNU\/Linux 12 \(bookworm\)/, 110_000);
        const log = await machine.console();
        expect(log).toMatch(/systemd 252/);
        expect(log).not.toMatch(/aim: cannot boot/);
        console.log(`systemd: welcome banner ${seen.seconds.toFixed(1)} s after QEMU started`);
      });
    } finally {
      await machine.stop();
    }
  }, 150_000);
});
