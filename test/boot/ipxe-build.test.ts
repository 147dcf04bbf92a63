import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servePxeBundle, type PxeHttpServer } from '../../src/run/pxe-http.js';
import { freePort } from '../../src/run/qemu.js';
import type { IpxeBuildResult } from '../../src/core/pxe/ipxe-build.js';
import { chainBootUrl } from '../../src/core/pxe/ipxe-script.js';
import { aim, projectRoot, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { startIpxeVm, type IpxeVm, type IpxeVmSpec } from './helpers/ipxe-vm.js';
import { prepareSlimNginx } from './helpers/slim-nginx.js';

/**
 * iPXE built from source for real (the pinned upstream snapshot in ../shared/vendor, or
 * AIM_IPXE_SRC), with the default embedded script chaining to a server this test runs, and booted
 * the ways machines boot it: the BIOS binary as the NIC's option ROM, snponly.efi chainloaded by
 * OVMF's own PXE over TFTP, the ISO as a CD-ROM under OVMF and SeaBIOS. Each time the test's server
 * must see the request the script makes, with the machine's MAC, UUID, architecture and platform.
 * Then the ROM chains into aim's PXE bundle of the slim nginx image, which boots and answers.
 */
const VENDORED = resolve(projectRoot, '..', 'shared', 'vendor', 'ipxe-0ab2277c4.tar.gz');
const SOURCE = process.env.AIM_IPXE_SRC ?? VENDORED;

/**
 * Bounds on iPXE's build (make -j2, each build directory compiled once: ~1,000 objects): about
 * 1.5 min per target on 2 idle cores, 13 to 21 min per target measured on this machine's 2 cores
 * shared at load 10 to 17. Past the bound the CLI gets SIGINT, which stops make's whole process group.
 */
const FIRST_BUILD_MS = 50 * 60_000;
const LATER_BUILD_MS = 10 * 60_000;
/** QEMU (TCG) from start to the script's HTTP request: 8–30 s measured. */
const BOOT_MS = 150_000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let server: PxeHttpServer;
let served: string;
let cacheDir: string;
let chain: string;
let out: string;
let first: IpxeBuildResult;
const vms: IpxeVm[] = [];

interface Run<T> {
  exitCode: number;
  json: T;
  stderr: string;
}

/** aim … --json with a bound; past it aim gets SIGINT (Ctrl-C), as a user would send, and must clean up. */
async function aimBounded<T>(args: string[], timeoutMs: number): Promise<Run<T>> {
  const r = await execa(process.execPath, [runJs, ...args, '--json'], { reject: false, timeout: timeoutMs, killSignal: 'SIGINT', forceKillAfterDelay: 30_000 });
  if (r.timedOut) throw new Error(`aim ${args.join(' ')} took more than ${timeoutMs / 60_000} min\n${r.stderr}`);
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`aim ${args.join(' ')}: no JSON on stdout (exit ${r.exitCode})\n${r.stdout}\n${r.stderr}`);
  }
  return { exitCode: r.exitCode ?? -1, json, stderr: r.stderr };
}

const build = (...extra: string[]) => ['pxe', 'ipxe', 'build', '--ipxe-src', SOURCE, '--chain', chain, '--cache-dir', cacheDir, ...extra];

async function boot(name: string, spec: Omit<IpxeVmSpec, 'dir' | 'maxSeconds' | 'mac' | 'uuid'>, mac: string, uuid: string): Promise<{ params: URLSearchParams; vm: IpxeVm }> {
  const dir = join(tmp.dir, `vm-${name}`);
  await mkdir(dir);
  const vm = await startIpxeVm({ ...spec, dir, mac, uuid, maxSeconds: BOOT_MS / 1000 + 30 });
  vms.push(vm);
  const deadline = Date.now() + BOOT_MS;
  for (;;) {
    const hit = server.requests.find((r) => r.path.startsWith('/boot.ipxe?') && new URLSearchParams(r.path.slice(r.path.indexOf('?') + 1)).get('mac') === mac);
    if (hit) return { params: new URLSearchParams(hit.path.slice(hit.path.indexOf('?') + 1)), vm };
    if (vm.exited() || Date.now() > deadline) {
      const log = await vm.console();
      await vm.stop();
      throw new Error(`${name}: no request for boot.ipxe from ${mac} ${vm.exited() ? 'before QEMU exited' : `within ${BOOT_MS / 1000} s`}; requests: ${JSON.stringify(server.requests.map((r) => r.path))}\n--- console ---\n${log.split('\n').slice(-40).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  if (!existsSync(SOURCE)) {
    throw new Error(`iPXE source not found at ${SOURCE}: put the vendored tarball in ../shared/vendor (see its README) or set AIM_IPXE_SRC to an iPXE checkout (git clone https://github.com/ipxe/ipxe) or a tarball of one`);
  }
  tmp = await tempDir('aim-ipxe-boot-');
  cacheDir = join(tmp.dir, 'cache');
  served = join(tmp.dir, 'served');
  out = join(tmp.dir, 'out');
  await mkdir(served);
  // what aim pxe serve would answer: a script that shows it ran
  await writeFile(join(served, 'boot.ipxe'), '#!ipxe\necho aim-test: the boot script was reached\nsleep 5\npoweroff\n');
  server = await servePxeBundle(served);
  // the host's 127.0.0.1 as QEMU's user-mode guests reach it
  chain = `http://10.0.2.2:${server.port}`;
  const started = Date.now();
  const res = await aimBounded<IpxeBuildResult>(build('--target', 'efi', '--target', 'bios', '--out', out), FIRST_BUILD_MS);
  expect(res.exitCode, res.stderr).toBe(0);
  first = res.json;
  console.log(`iPXE efi + bios from ${SOURCE}: built in ${((Date.now() - started) / 60_000).toFixed(1)} min (make -j${first.build?.jobs}; ${first.build?.seconds.toFixed(0)} s in make)`);
}, FIRST_BUILD_MS + 60_000);

afterAll(async () => {
  for (const vm of vms) await vm.stop();
  await server?.close();
  await tmp?.cleanup();
});

describe('iPXE built from source with the default embedded script', () => {
  it('builds snponly.efi and ipxe.efi, undionly.kpxe, ipxe.lkrn and the virtio-net ROM, the script inside', async () => {
    expect(first.targets.map((t) => [t.target, t.cached, t.files.map((f) => f.name)])).toEqual([
      ['efi', false, ['snponly.efi', 'ipxe.efi']],
      ['bios', false, ['undionly.kpxe', 'ipxe.lkrn', '1af41000.rom']],
    ]);
    expect(first.source).toMatchObject({ kind: existsSync(join(SOURCE, 'src')) ? 'tree' : 'tarball' });
    const { bootUrl } = chainBootUrl(chain);
    // UEFI images are not compressed: the script is there as written
    for (const name of ['snponly.efi', 'ipxe.efi']) {
      const bin = await readFile(join(out, name));
      expect(bin.subarray(0, 2).toString('latin1')).toBe('MZ');
      expect(bin.includes(Buffer.from(`chain ${bootUrl} || goto no_boot`)), `${name} holds the chain line`).toBe(true);
      expect(bin.includes(Buffer.from('aim: configuring the network by DHCP'))).toBe(true);
    }
    // BIOS images are LZMA-compressed (the boots below prove their script); the ROM is a PCI
    // option ROM for virtio-net: 55 AA, then a PCI data structure naming 1af4:1000
    const rom = await readFile(join(out, '1af41000.rom'));
    expect([rom[0], rom[1]]).toEqual([0x55, 0xaa]);
    const pcir = rom.readUInt16LE(0x18);
    expect(rom.subarray(pcir, pcir + 4).toString('latin1')).toBe('PCIR');
    expect([rom.readUInt16LE(pcir + 4), rom.readUInt16LE(pcir + 6)]).toEqual([0x1af4, 0x1000]);
    for (const f of first.targets.flatMap((t) => t.files)) {
      expect(f.sha256).toBe((await execa('sha256sum', [f.outPath!])).stdout.split(' ')[0]);
    }
  });

  it('a second build of the same source, script and targets comes from the cache', async () => {
    const started = Date.now();
    const res = await aimBounded<IpxeBuildResult>(build('--target', 'bios', '--target', 'efi'), LATER_BUILD_MS);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.targets.map((t) => [t.target, t.cached])).toEqual([['efi', true], ['bios', true]]);
    expect(res.json.build).toBeUndefined();
    expect(res.json.targets.flatMap((t) => t.files.map((f) => f.sha256))).toEqual(first.targets.flatMap((t) => t.files.map((f) => f.sha256)));
    console.log(`iPXE efi + bios again: from the cache, aim ran ${((Date.now() - started) / 1000).toFixed(1)} s (source hash included)`);
  }, LATER_BUILD_MS + 10_000);

  it('the BIOS build as the NIC\'s option ROM (SeaBIOS) runs DHCP and asks the server with its MAC, UUID, i386 and pcbios', async () => {
    const mac = '52:54:00:1a:00:01';
    const uuid = '8d9a7c1e-2b3f-4e5a-9c6d-000000000001';
    const { params, vm } = await boot('rom-bios', { firmware: 'bios', nicRom: join(out, '1af41000.rom'), memoryMiB: 128 }, mac, uuid);
    expect(Object.fromEntries(params)).toEqual({ mac, uuid, buildarch: 'i386', platform: 'pcbios' });
    await vm.stop();
  }, BOOT_MS + 30_000);

  it('snponly.efi, chainloaded over TFTP by OVMF\'s own PXE, asks the server with x86_64 and efi', async () => {
    const mac = '52:54:00:1a:00:02';
    const uuid = '8d9a7c1e-2b3f-4e5a-9c6d-000000000002';
    // romfile= (none): the firmware's own virtio-net driver and PXE client, as on a server's NIC
    const { params, vm } = await boot('snponly-uefi', { firmware: 'uefi', nicRom: '', tftp: { dir: out, bootfile: 'snponly.efi' }, memoryMiB: 256 }, mac, uuid);
    expect(Object.fromEntries(params)).toEqual({ mac, uuid, buildarch: 'x86_64', platform: 'efi' });
    // OVMF shows iPXE's console on the serial port: the script's messages, then the served script's
    const deadline = Date.now() + 60_000;
    while (!(await vm.console()).includes('aim-test: the boot script was reached') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const log = await vm.console();
    expect(log).toContain(`aim: asking ${chain} what ${mac} (${uuid}, x86_64 efi) boots`);
    expect(log).toContain('aim-test: the boot script was reached');
    await vm.stop();
  }, BOOT_MS + 90_000);

  it('the ISO, made from the same build, boots as a CD-ROM under OVMF and SeaBIOS and asks the server', async () => {
    const res = await aimBounded<IpxeBuildResult>(build('--target', 'iso', '--out', out), LATER_BUILD_MS);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.targets).toEqual([expect.objectContaining({ target: 'iso', cached: false })]);
    console.log(`iPXE iso from the same work trees: ${res.json.build!.seconds.toFixed(0)} s`);
    const iso = join(out, 'ipxe.iso');
    for (const [i, firmware] of (['uefi', 'bios'] as const).entries()) {
      const mac = `52:54:00:1a:00:1${i}`;
      const uuid = `8d9a7c1e-2b3f-4e5a-9c6d-00000000001${i}`;
      const { params, vm } = await boot(`iso-${firmware}`, { firmware, nicRom: '', cdrom: iso, memoryMiB: 256 }, mac, uuid);
      expect(Object.fromEntries(params)).toEqual({ mac, uuid, buildarch: firmware === 'uefi' ? 'x86_64' : 'i386', platform: firmware === 'uefi' ? 'efi' : 'pcbios' });
      await vm.stop();
    }
  }, LATER_BUILD_MS + 2 * BOOT_MS + 30_000);

  it('the ROM chains into aim\'s PXE bundle of the slim nginx image, which boots from RAM and answers', async () => {
    const repo = join(tmp.dir, 'repo');
    await prepareSlimNginx(repo);
    const bundle = join(tmp.dir, 'bundle');
    // the bundle's own iPXE binaries do not matter here: Debian's, whatever AIM_IPXE_SRC says
    const res = await aim(['build', 'slim/nginx:1', '--format', 'pxe', '--kernel', 'core/kernel:bookworm', '--out', bundle, '--repo', repo], { env: { AIM_IPXE_SRC: '', AIM_CACHE_DIR: cacheDir } });
    expect(res.exitCode, res.stderr).toBe(0);
    // the server now answers boot.ipxe with the bundle's script; vmlinuz and initrd.img sit next to it
    for (const f of ['boot.ipxe', 'vmlinuz', 'initrd.img']) await copyFile(join(bundle, f), join(served, f));
    const port = await freePort();
    const mac = '52:54:00:1a:00:20';
    const { vm } = await boot('bundle', { firmware: 'bios', nicRom: join(out, '1af41000.rom'), memoryMiB: 192, forward: { host: port, guest: 80 } }, mac, '8d9a7c1e-2b3f-4e5a-9c6d-000000000020');
    const deadline = Date.now() + BOOT_MS;
    let answer: { status: number; body: string } | undefined;
    while (!answer && Date.now() < deadline && !vm.exited()) {
      answer = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) }).then(async (r) => ({ status: r.status, body: await r.text() }), () => undefined);
      if (!answer) await new Promise((r) => setTimeout(r, 500));
    }
    const log = await vm.console();
    await vm.stop();
    expect(answer, `nginx never answered\n--- console ---\n${log.split('\n').slice(-40).join('\n')}`).toBeDefined();
    expect(answer!.status).toBe(200);
    expect(answer!.body).toContain('<title>Welcome to nginx!</title>');
    // the embedded script asked for boot.ipxe, then the bundle's script fetched the kernel and the initrd whole
    const gets = server.requests.filter((r) => r.method === 'GET' && (r.path === '/vmlinuz' || r.path === '/initrd.img'));
    expect(gets.map((r) => [r.path, r.status, r.complete])).toEqual([['/vmlinuz', 200, true], ['/initrd.img', 200, true]]);
    expect(log).toMatch(/Command line: (vmlinuz )?initrd=initrd\.img console=ttyS0,115200 panic=-1 root=ram/);
  }, 1_200_000);
});
