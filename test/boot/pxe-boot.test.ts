import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim } from '../helpers/cli.js';
import { readNewcArchives } from '../helpers/newc.js';
import { tempDir } from '../helpers/tmp.js';
import { bootAndGet } from './helpers/qemu.js';
import { prepareSlimNginx } from './helpers/slim-nginx.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let bundle: BuildJson;

interface BuildJson {
  outDir: string;
  artifacts: { path: string; kind: string; bytes: number; sha256: string }[];
}
interface ErrorJson {
  error: { code: string; message: string; hint?: string };
}

/**
 * Guest memory of the PXE boots, the whole slim root in RAM. Measured minima: 112 MiB under
 * SeaBIOS; OVMF itself faults below 160 MiB.
 */
const MEMORY_MIB = { bios: 128, uefi: 160 } as const;

const build = <T = BuildJson>(out: string, ...extra: string[]) =>
  aim<T>(['build', 'slim/nginx:1', '--format', 'pxe', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, out), '--repo', repo, ...extra]);

const names = (b: BuildJson) => b.artifacts.map((a) => a.path.slice(b.outDir.length + 1));

beforeAll(async () => {
  tmp = await tempDir('aim-pxe-');
  repo = join(tmp.dir, 'repo');
  await prepareSlimNginx(repo);
  const res = await build('pxe');
  expect(res.exitCode, res.stderr).toBe(0);
  bundle = res.json;
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('PXE bundle of the slim nginx image', () => {
  it('holds the kernel, the initrd with the root, boot.ipxe and Debian\'s iPXE binaries', async () => {
    expect(names(bundle)).toEqual(['vmlinuz', 'initrd.img', 'boot.ipxe', 'undionly.kpxe', 'ipxe.efi']);
    const script = await readFile(join(bundle.outDir, 'boot.ipxe'), 'utf8');
    expect(script).toMatch(/^#!ipxe\n/);
    expect(script).toMatch(/^kernel vmlinuz initrd=initrd\.img console=ttyS0,115200 panic=-1 root=ram$/m);
    expect(script).toMatch(/^initrd initrd\.img$/m);
    for (const bin of ['undionly.kpxe', 'ipxe.efi']) await execa('cmp', [join(bundle.outDir, bin), join('/usr/lib/ipxe', bin)]);
    // two archives: the core initramfs, then the whole root under newroot/
    const initrd = bundle.artifacts.find((a) => a.path.endsWith('initrd.img'))!;
    const cpio = (await execa('zstd', ['-dc', initrd.path], { encoding: 'buffer', maxBuffer: 1 << 30 })).stdout;
    const [core, root] = readNewcArchives(Buffer.from(cpio)).map((a) => a.map((m) => m.name));
    expect(core).toContain('init');
    expect(core).toContain('bin/busybox');
    expect(root).toContain('newroot/usr/sbin/nginx');
    expect(root).toContain('newroot/.aim/init');
    expect(root!.at(-1)).toBe('etc/aim/root-complete');
    expect(root!.slice(0, -1).every((n) => n === 'newroot' || n.startsWith('newroot/'))).toBe(true);
    console.log(`pxe bundle: initrd ${(initrd.bytes / 1048576).toFixed(1)} MiB, whole bundle ${(bundle.artifacts.reduce((n, a) => n + a.bytes, 0) / 1048576).toFixed(1)} MiB`);
  });

  // SeaBIOS by TFTP here, OVMF by HTTP below: each firmware and each way in once (OVMF's own PXE
  // client by TFTP is booted by test/boot/pxe-serve.test.ts, an OVMF iPXE built from source by ipxe-build)
  for (const firmware of ['bios'] as const) {
    it(`boots by TFTP through QEMU's iPXE ROM under ${firmware === 'bios' ? 'SeaBIOS' : 'OVMF'} (TCG, ${MEMORY_MIB[firmware]} MiB) and nginx answers`, async () => {
      const vm = join(tmp.dir, `vm-${firmware}`);
      await mkdir(vm);
      const answer = await bootAndGet({ dir: vm, firmware, pxe: { tftpDir: bundle.outDir, bootfile: 'boot.ipxe' }, memoryMiB: MEMORY_MIB[firmware], guestPort: 80, timeoutMs: 120_000 });
      expect(answer.status).toBe(200);
      expect(answer.body).toContain('<title>Welcome to nginx!</title>');
      // the kernel booted with boot.ipxe's command line (under OVMF iPXE also logs its TFTP fetch
      // on the serial console; under SeaBIOS it writes only to the screen)
      expect(answer.console).toMatch(/Command line: initrd=initrd\.img console=ttyS0,115200 panic=-1 root=ram/);
      expect(answer.console).toMatch(/aim: eth0 has address 10\.0\.2\.15/);
      console.log(`pxe ${firmware}: nginx answered ${answer.seconds.toFixed(1)} s after QEMU started`);
    }, 150_000);
  }

  it('boots by HTTP from aim\'s boot server with `aim boot --pxe-via http` under OVMF, and nginx answers', async () => {
    interface BootJson {
      probe: { status: number; title?: string; seconds: number };
      pxeHttp: { port: number; requests: { method: string; path: string; status: number; bytes: number; complete: boolean }[] };
    }
    const res = await aim<BootJson>(['boot', bundle.outDir, '--pxe-via', 'http', '--firmware', 'uefi', '--memory', String(MEMORY_MIB.uefi), '--forward', '0:80', '--probe', '/', '--timeout', '120s']);
    expect(res.exitCode, res.stdout + res.stderr).toBe(0);
    expect(res.json.probe).toMatchObject({ status: 200, title: 'Welcome to nginx!' });
    // iPXE fetched the script, then the kernel and the initrd it names, whole, from aim's server
    const size = (name: string) => bundle.artifacts.find((a) => a.path.endsWith(`/${name}`))!.bytes;
    const gets = res.json.pxeHttp.requests.filter((r) => r.method === 'GET').map((r) => [r.path, r.status, r.bytes, r.complete]);
    expect(gets).toEqual([
      ['/boot.ipxe', 200, size('boot.ipxe'), true],
      ['/vmlinuz', 200, size('vmlinuz'), true],
      ['/initrd.img', 200, size('initrd.img'), true],
    ]);
    console.log(`pxe uefi by HTTP: nginx answered ${res.json.probe.seconds.toFixed(1)} s after QEMU started`);
  }, 180_000);

  it('a root that the kernel could not unpack whole stops the machine with a clear message', async () => {
    // a cut initrd is what a machine too small to unpack it sees: the kernel stops at the first
    // error and boots anyway, so /init must notice the missing end of the root cpio
    const cut = join(tmp.dir, 'pxe-cut');
    await mkdir(cut);
    for (const name of ['vmlinuz', 'boot.ipxe']) await execa('cp', [join(bundle.outDir, name), join(cut, name)]);
    const initrd = await readFile(join(bundle.outDir, 'initrd.img'));
    await writeFile(join(cut, 'initrd.img'), initrd.subarray(0, Math.floor(initrd.length * 0.8)));
    const vm = join(tmp.dir, 'vm-cut');
    await mkdir(vm);
    await expect(bootAndGet({ dir: vm, firmware: 'bios', pxe: { tftpDir: cut, bootfile: 'boot.ipxe' }, memoryMiB: MEMORY_MIB.bios, guestPort: 80, timeoutMs: 90_000 }))
      .rejects.toThrow(/QEMU exited[^]*aim: the root filesystem in RAM is incomplete/);
  }, 120_000);

  it('is reproducible: the same image built again gives byte-identical files', async () => {
    const again = await build('pxe-again');
    expect(again.exitCode, again.stderr).toBe(0);
    expect(names(again.json)).toEqual(names(bundle));
    expect(again.json.artifacts.map((a) => a.sha256)).toEqual(bundle.artifacts.map((a) => a.sha256));
    for (const name of ['vmlinuz', 'initrd.img', 'boot.ipxe']) await execa('cmp', [join(bundle.outDir, name), join(again.json.outDir, name)]);
  }, 300_000);
});

describe('pxe build faults: clear errors, nothing left behind', () => {
  it('--ipxe-src that is not an iPXE tree', async () => {
    const res = await build<ErrorJson>('notipxe', '--ipxe-src', tmp.dir);
    expect(res.exitCode).toBe(2);
    expect(res.json.error.message).toMatch(/is not an iPXE source tree \(missing src\/Makefile/);
    expect(existsSync(join(tmp.dir, 'notipxe'))).toBe(false);
  });

  it('an iPXE build that fails: the tail of make\'s output, and the output directory removed', async () => {
    const src = join(tmp.dir, 'ipxe-broken');
    for (const d of ['src/include/ipxe', 'src/arch/x86']) await mkdir(join(src, d), { recursive: true });
    await writeFile(join(src, 'src', 'Makefile'), 'bin/undionly.kpxe:\n\t@echo "cc1: fatal error: no compiler here" >&2; exit 1\n');
    const res = await aim<ErrorJson>(['build', 'slim/nginx:1', '--format', 'pxe', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, 'broken'), '--repo', repo], { env: { AIM_IPXE_SRC: src, AIM_CACHE_DIR: join(tmp.dir, 'ipxe-cache') } });
    expect(res.exitCode).toBe(6);
    expect(res.json.error.message).toMatch(/^make failed \(exit 2\): [^]*cc1: fatal error: no compiler here/);
    expect(res.json.error.hint).toMatch(/liblzma-dev/);
    expect(existsSync(join(tmp.dir, 'broken'))).toBe(false);
  });
});
