import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { startVm, withConsole } from './helpers/qemu.js';
import { prepareSlimNginx } from './helpers/slim-nginx.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let firstRaw: BuildJson['artifacts'][number] | undefined;

interface BuildJson {
  artifacts: { path: string; kind: string; bytes: number; sha256: string }[];
}
interface ErrorJson {
  error: { code: string; message: string; hint?: string };
}

const build = <T = BuildJson>(out: string, ...extra: string[]) =>
  aim<T>(['build', 'slim/nginx:1', '--format', 'raw', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, out), '--repo', repo, ...extra]);

beforeAll(async () => {
  tmp = await tempDir('aim-boot-');
  repo = join(tmp.dir, 'repo');
  await prepareSlimNginx(repo);
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('raw UEFI disk of the slim nginx image', () => {
  it('boots under OVMF (TCG) and nginx answers through a forwarded port', async () => {
    const res = await build('raw');
    expect(res.exitCode, res.stderr).toBe(0);
    const [disk] = res.json.artifacts;
    firstRaw = disk;
    expect(disk!.kind).toMatch(/raw disk/);
    const table = JSON.parse((await execa('sfdisk', ['--json', disk!.path])).stdout) as { partitiontable: { label: string; partitions: { type: string }[] } };
    expect(table.partitiontable.label).toBe('gpt');
    expect(table.partitiontable.partitions.map((p) => p.type)).toEqual(['C12A7328-F81F-11D2-BA4B-00A0C93EC93B', '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709']);
    const vm = join(tmp.dir, 'vm-raw');
    await mkdir(vm);
    const machine = await startVm({ dir: vm, disk: { path: disk!.path, format: 'raw' }, guestPort: 80, maxSeconds: 140 });
    try {
      await withConsole(machine, async () => {
        const answer = await machine.waitForHttp('/', 90_000);
        expect(answer.status).toBe(200);
        expect(answer.body).toContain('<title>Welcome to nginx!</title>');
        expect(await machine.console()).toMatch(/aim: eth0 has address 10\.0\.2\.15/);
        console.log(`raw disk: nginx answered ${answer.seconds.toFixed(1)} s after QEMU started`);
        // the ACPI power button stops the service and powers the machine off
        const off = await machine.powerDown(30_000);
        expect(off.exitCode).toBe(0);
        expect(await machine.console()).toMatch(/aim: power button pressed/);
        console.log(`raw disk: powered off ${off.seconds.toFixed(1)} s after the power button`);
      });
    } finally {
      await machine.stop();
    }
  }, 150_000);

  it('is reproducible: the same image built again gives a byte-identical disk', async () => {
    // the first build's disk was booted (QEMU may have written to it): its hash is the one aim
    // reported when it built it, checked here against the bytes of the second build
    const again = await build('raw-again');
    expect(again.exitCode, again.stderr).toBe(0);
    const sum = (await execa('sha256sum', [again.json.artifacts[0]!.path])).stdout.split(' ')[0];
    expect(sum).toBe(firstRaw!.sha256);
  }, 120_000);
});

describe('stream-optimized VMDK of the slim nginx image', () => {
  it('is reproducible (its random CID replaced) and stream-optimized (booted by the OVA test, which carries this VMDK)', async () => {
    const vmdk = (out: string) => aim<BuildJson>(['build', 'slim/nginx:1', '--format', 'vmdk', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, out), '--repo', repo]);
    const one = await vmdk('vmdk');
    expect(one.exitCode, one.stdout + one.stderr).toBe(0);
    const two = await vmdk('vmdk-again');
    expect(two.exitCode, two.stdout + two.stderr).toBe(0);
    expect(two.json.artifacts[0]!.sha256).toBe(one.json.artifacts[0]!.sha256);
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', one.json.artifacts[0]!.path])).stdout) as { format: string; 'format-specific': { data: { 'create-type': string } } };
    expect(info.format).toBe('vmdk');
    expect(info['format-specific'].data['create-type']).toBe('streamOptimized');
  }, 200_000);
});

describe('aim boot faults: clear errors before QEMU starts', () => {
  it('a path that holds no disk, a probe without a forward, a bad forward', async () => {
    const empty = join(tmp.dir, 'empty');
    await mkdir(empty);
    const none = await aim<ErrorJson>(['boot', empty]);
    expect(none.exitCode).toBe(4);
    expect(none.json.error.code).toBe('E_NOT_BOOTABLE');
    const missing = await aim<ErrorJson>(['boot', join(tmp.dir, 'nope.raw')]);
    expect(missing.exitCode).toBe(3);
    const raw = join(tmp.dir, 'raw');
    const noForward = await aim<ErrorJson>(['boot', raw, '--probe', '/']);
    expect(noForward.exitCode).toBe(2);
    expect(noForward.json.error.message).toMatch(/--probe needs a --forward/);
    const bad = await aim<ErrorJson>(['boot', raw, '--forward', '80']);
    expect(bad.exitCode).toBe(2);
    expect(bad.json.error.message).toMatch(/expected HOST:GUEST/);
  });
});

describe('raw build faults: clear errors before any work, nothing left behind', () => {
  it('a disk too small', async () => {
    const res = await build<ErrorJson>('small', '--size', '80M');
    expect(res.exitCode).toBe(2);
    expect(res.json.error.message).toMatch(/^disk too small: --size 80 MiB, but the image needs at least \d+ MiB/);
    expect(existsSync(join(tmp.dir, 'small'))).toBe(false);
  });

  // without --kernel the repository's kernel core is the default (test/e2e/kernel-default.test.ts)
  it('a --kernel image that holds no kernel', async () => {
    const res = await aim<ErrorJson>(['build', 'slim/nginx:1', '--format', 'raw', '--kernel', 'slim/nginx:1', '--out', join(tmp.dir, 'nokernel'), '--repo', repo]);
    expect(res.exitCode).toBe(4);
    expect(res.json.error.code).toBe('E_NO_KERNEL');
    expect(res.json.error.message).toMatch(/^slim\/nginx:1 has no kernel/);
    expect(res.json.error.hint).toMatch(/aim core kernel/);
    expect(existsSync(join(tmp.dir, 'nokernel'))).toBe(false);
  });

  it('an entrypoint that is not in the image', async () => {
    const res = await build<ErrorJson>('noentry', '--entrypoint', 'redis-server --port 80');
    expect(res.exitCode).toBe(4);
    expect(res.json.error.code).toBe('E_NO_ENTRYPOINT');
    expect(res.json.error.message).toMatch(/entrypoint redis-server .* is not in the image/);
    expect(existsSync(join(tmp.dir, 'noentry'))).toBe(false);
  });

  it('--init systemd for an image without systemd, and an unknown module', async () => {
    const sd = await build<ErrorJson>('nosystemd', '--init', 'systemd');
    expect(sd.json.error.code).toBe('E_NO_SYSTEMD');
    const mod = await build<ErrorJson>('nomodule', '--module', 'no_such_driver');
    expect(mod.exitCode).toBe(2);
    expect(mod.json.error.message).toMatch(/no_such_driver/);
    expect(existsSync(join(tmp.dir, 'nosystemd')) || existsSync(join(tmp.dir, 'nomodule'))).toBe(false);
  });

  it('a tool failing midway: the partial disk and the scratch space are removed', async () => {
    const bin = join(tmp.dir, 'failing-bin');
    await mkdir(bin);
    await writeFile(join(bin, 'sfdisk'), '#!/bin/sh\necho "sfdisk: simulated failure" >&2\nexit 1\n', { mode: 0o755 });
    const scratch = join(tmp.dir, 'scratch');
    await mkdir(scratch);
    const res = await aim<ErrorJson>(['build', 'slim/nginx:1', '--format', 'raw', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, 'failed'), '--repo', repo], {
      env: { PATH: `${bin}:${process.env.PATH}`, AIM_TMPDIR: scratch },
    });
    expect(res.exitCode).toBe(6);
    expect(res.json.error.message).toMatch(/^sfdisk failed \(exit 1\): sfdisk: simulated failure/);
    expect(existsSync(join(tmp.dir, 'failed'))).toBe(false);
    expect(await readdir(scratch)).toEqual([]);
  });

  it('a missing tool names its Debian package', async () => {
    // a PATH with every tool of the raw build in /usr/bin but mcopy (sbin tools are found anyway)
    const bin = join(tmp.dir, 'fake-bin');
    await mkdir(bin);
    for (const t of ['zstd', 'busybox', 'mmd']) await symlink(`/usr/bin/${t}`, join(bin, t));
    const res = await aim<ErrorJson>(['build', 'slim/nginx:1', '--format', 'raw', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, 'notool'), '--repo', repo], { env: { PATH: bin } });
    expect(res.exitCode).toBe(5);
    expect(res.json.error.message).toMatch(/^mcopy not found/);
    expect(res.json.error.hint).toMatch(/apt-get install mtools/);
    expect(existsSync(join(tmp.dir, 'notool'))).toBe(false);
  });
});
