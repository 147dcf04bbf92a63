import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
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
 * AIM_IPXE_SRC), with the default embedded script chaining to a server this test runs. One build
 * per run, shared by every test here: efi, bios and iso in one `aim pxe ipxe build`, so each of
 * iPXE's two build directories is compiled once (the ISO only packs binaries the other two targets
 * link anyway). Two boots, each through to the slim nginx image: the BIOS build as the NIC's
 * option ROM under SeaBIOS, and the ISO as a CD-ROM under OVMF (ipxe.efi). Each time the server
 * must see the script's request with the machine's MAC, UUID, architecture and platform, answer
 * it with the PXE bundle's boot.ipxe, and nginx must answer from the booted image.
 */
const VENDORED_NAME = 'ipxe-0ab2277c4.tar.gz';
/** ../shared/vendor next to the checkout, or next to one of its parents (a worktree under ../wt/<name>). */
function vendored(): string {
  for (let dir = resolve(projectRoot, '..'); ; dir = dirname(dir)) {
    const candidate = join(dir, 'shared', 'vendor', VENDORED_NAME);
    if (existsSync(candidate) || dir === dirname(dir)) return existsSync(candidate) ? candidate : resolve(projectRoot, '..', 'shared', 'vendor', VENDORED_NAME);
  }
}
const SOURCE = process.env.AIM_IPXE_SRC || vendored();

/**
 * Bound on iPXE's build (make -j2, each build directory compiled once: ~1,000 objects): about
 * 1.5 min per build directory on 2 idle cores, 13 to 21 min per directory measured on this
 * machine's 2 cores shared at load 10 to 17. Past the bound the CLI gets SIGINT, which stops make's
 * whole process group.
 */
const BUILD_MS = 50 * 60_000;
/** The cache hit: hashing the source and reading the entries. */
const CACHED_MS = 5 * 60_000;
/** QEMU (TCG) from start to the script's HTTP request: 8–30 s measured. */
const REQUEST_MS = 150_000;
/** From the request to nginx answering in the booted slim image. */
const NGINX_MS = 240_000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let server: PxeHttpServer;
let cacheDir: string;
let chain: string;
let out: string;
let built: IpxeBuildResult;
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

const TARGETS = ['--target', 'efi', '--target', 'bios', '--target', 'iso'];
const build = (...extra: string[]) => ['pxe', 'ipxe', 'build', '--ipxe-src', SOURCE, '--chain', chain, '--cache-dir', cacheDir, ...TARGETS, ...extra];

/**
 * Boots a machine, waits for its boot.ipxe request (by MAC) and then for nginx of the slim image
 * the bundle's script boots; returns the request's query, nginx's answer, the console and the
 * requests the server saw from the boot's start.
 */
async function bootToNginx(name: string, spec: Omit<IpxeVmSpec, 'dir' | 'maxSeconds' | 'mac' | 'uuid' | 'forward'>, mac: string, uuid: string) {
  const dir = join(tmp.dir, `vm-${name}`);
  await mkdir(dir);
  const port = await freePort();
  const first = server.requests.length;
  const vm = await startIpxeVm({ ...spec, dir, mac, uuid, forward: { host: port, guest: 80 }, maxSeconds: (REQUEST_MS + NGINX_MS) / 1000 + 30 });
  vms.push(vm);
  const failed = async (why: string) => {
    const log = await vm.console();
    await vm.stop();
    return new Error(`${name}: ${why}; requests: ${JSON.stringify(server.requests.slice(first).map((r) => r.path))}\n--- console ---\n${log.split('\n').slice(-40).join('\n')}`);
  };
  let deadline = Date.now() + REQUEST_MS;
  let params: URLSearchParams | undefined;
  while (!params) {
    const hit = server.requests.slice(first).find((r) => r.path.startsWith('/boot.ipxe?') && new URLSearchParams(r.path.slice(r.path.indexOf('?') + 1)).get('mac') === mac);
    if (hit) params = new URLSearchParams(hit.path.slice(hit.path.indexOf('?') + 1));
    else if (vm.exited() || Date.now() > deadline) throw await failed(`no request for boot.ipxe from ${mac} ${vm.exited() ? 'before QEMU exited' : `within ${REQUEST_MS / 1000} s`}`);
    else await new Promise((r) => setTimeout(r, 250));
  }
  deadline = Date.now() + NGINX_MS;
  let answer: { status: number; body: string } | undefined;
  while (!answer) {
    answer = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) }).then(async (r) => ({ status: r.status, body: await r.text() }), () => undefined);
    if (answer) break;
    if (vm.exited() || Date.now() > deadline) throw await failed(`nginx never answered ${vm.exited() ? 'before QEMU exited' : `within ${NGINX_MS / 1000} s of the request`}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const log = await vm.console();
  await vm.stop();
  return { params: Object.fromEntries(params), answer, log, requests: server.requests.slice(first) };
}

/** The slim nginx image's PXE bundle (Debian's iPXE binaries, whatever AIM_IPXE_SRC says: only its script, kernel and initrd are served). */
async function slimNginxBundle(served: string): Promise<void> {
  const repo = join(tmp.dir, 'repo');
  await prepareSlimNginx(repo);
  const bundle = join(tmp.dir, 'bundle');
  const res = await aim(['build', 'slim/nginx:1', '--format', 'pxe', '--kernel', 'core/kernel:bookworm', '--out', bundle, '--repo', repo], { env: { AIM_IPXE_SRC: '' } });
  expect(res.exitCode, res.stderr).toBe(0);
  // what aim pxe serve will answer a machine assigned the image: boot.ipxe, then vmlinuz and initrd.img next to it
  for (const f of ['boot.ipxe', 'vmlinuz', 'initrd.img']) await copyFile(join(bundle, f), join(served, f));
}

beforeAll(async () => {
  if (!existsSync(SOURCE)) {
    throw new Error(`iPXE source not found at ${SOURCE}: put the vendored tarball in ../shared/vendor (see its README) or set AIM_IPXE_SRC to an iPXE checkout (git clone https://github.com/ipxe/ipxe) or a tarball of one`);
  }
  tmp = await tempDir('aim-ipxe-boot-');
  cacheDir = join(tmp.dir, 'cache');
  out = join(tmp.dir, 'out');
  const served = join(tmp.dir, 'served');
  await mkdir(served);
  server = await servePxeBundle(served);
  // the host's 127.0.0.1 as QEMU's user-mode guests reach it
  chain = `http://10.0.2.2:${server.port}`;
  const started = Date.now();
  // the image and its bundle while iPXE compiles: neither needs the other
  const [res] = await Promise.all([aimBounded<IpxeBuildResult>(build('--out', out), BUILD_MS), slimNginxBundle(served)]);
  expect(res.exitCode, res.stderr).toBe(0);
  built = res.json;
  console.log(`iPXE efi + bios + iso from ${SOURCE}: ${built.build?.seconds.toFixed(0)} s in make -j${built.build?.jobs} and genfsimg; with the slim nginx bundle beside it ${((Date.now() - started) / 60_000).toFixed(1)} min`);
}, BUILD_MS + 120_000);

afterAll(async () => {
  for (const vm of vms) await vm.stop();
  await server?.close();
  await tmp?.cleanup();
});

describe('iPXE built from source with the default embedded script', () => {
  it('one build compiles each build directory once and yields every target\'s files, the script inside', async () => {
    expect(built.targets.map((t) => [t.target, t.cached, t.files.map((f) => f.name)])).toEqual([
      ['efi', false, ['snponly.efi', 'ipxe.efi']],
      ['bios', false, ['undionly.kpxe', 'ipxe.lkrn', '1af41000.rom']],
      ['iso', false, ['ipxe.iso']],
    ]);
    expect(built.source).toMatchObject({ kind: existsSync(join(SOURCE, 'src')) ? 'tree' : 'tarball' });
    // one make per build directory, with every goal of that directory
    expect(built.build!.trees.map((t) => t.slice(t.lastIndexOf('/') + 1))).toEqual(['bin', 'bin-x86_64-efi']);
    const makes = (await readFile(built.build!.log, 'utf8')).split('\n').filter((l) => /^\$ \S*make /.test(l));
    expect(makes.map((l) => l.split(' ').filter((a) => a.startsWith('bin')))).toEqual([
      ['bin/undionly.kpxe', 'bin/ipxe.lkrn', 'bin/1af41000.rom'],
      ['bin-x86_64-efi/snponly.efi', 'bin-x86_64-efi/ipxe.efi'],
    ]);
    const { bootUrl } = chainBootUrl(chain);
    // UEFI images are not compressed: the script is there as written
    for (const name of ['snponly.efi', 'ipxe.efi']) {
      const bin = await readFile(join(out, name));
      expect(bin.subarray(0, 2).toString('latin1')).toBe('MZ');
      expect(bin.includes(Buffer.from(`chain ${bootUrl} || goto no_boot`)), `${name} holds the chain line`).toBe(true);
      expect(bin.includes(Buffer.from('aim: configuring the network by DHCP'))).toBe(true);
    }
    // BIOS images are LZMA-compressed (the ROM's boot below proves its script); the ROM is a PCI
    // option ROM for virtio-net: 55 AA, then a PCI data structure naming 1af4:1000
    const rom = await readFile(join(out, '1af41000.rom'));
    expect([rom[0], rom[1]]).toEqual([0x55, 0xaa]);
    const pcir = rom.readUInt16LE(0x18);
    expect(rom.subarray(pcir, pcir + 4).toString('latin1')).toBe('PCIR');
    expect([rom.readUInt16LE(pcir + 4), rom.readUInt16LE(pcir + 6)]).toEqual([0x1af4, 0x1000]);
    // the ISO boots both ways: El Torito entries for BIOS (isolinux) and UEFI (the EFI system image)
    const torito = await execa('xorriso', ['-indev', join(out, 'ipxe.iso'), '-report_el_torito', 'plain'], { all: true });
    expect(torito.all).toMatch(/El Torito boot img :\s+1\s+BIOS\s+y\b/);
    expect(torito.all).toMatch(/El Torito boot img :\s+2\s+UEFI\s+y\b/);
    for (const f of built.targets.flatMap((t) => t.files)) {
      expect(f.sha256).toBe((await execa('sha256sum', [f.outPath!])).stdout.split(' ')[0]);
    }
  });

  it('the same build again comes from the cache, the same files', async () => {
    const res = await aimBounded<IpxeBuildResult>(build(), CACHED_MS);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.targets.map((t) => [t.target, t.cached])).toEqual([['efi', true], ['bios', true], ['iso', true]]);
    expect(res.json.build).toBeUndefined();
    expect(res.json.targets.flatMap((t) => t.files.map((f) => f.sha256))).toEqual(built.targets.flatMap((t) => t.files.map((f) => f.sha256)));
    console.log(`iPXE efi + bios + iso again: from the cache in ${res.json.seconds.toFixed(1)} s (source hash included)`);
  }, CACHED_MS + 10_000);

  it('the BIOS build as the NIC\'s option ROM (SeaBIOS) asks the server as i386 pcbios with its MAC and UUID, and boots the slim image it is sent', async () => {
    const mac = '52:54:00:1a:00:01';
    const uuid = '8d9a7c1e-2b3f-4e5a-9c6d-000000000001';
    const boot = await bootToNginx('rom-bios', { firmware: 'bios', nicRom: join(out, '1af41000.rom'), memoryMiB: 192 }, mac, uuid);
    expect(boot.params).toEqual({ mac, uuid, buildarch: 'i386', platform: 'pcbios' });
    expect(boot.answer.status).toBe(200);
    expect(boot.answer.body).toContain('<title>Welcome to nginx!</title>');
    // the embedded script asked for boot.ipxe, then the bundle's script fetched the kernel and the initrd whole
    expect(boot.requests.filter((r) => r.path === '/vmlinuz' || r.path === '/initrd.img').map((r) => [r.path, r.status, r.complete])).toEqual([['/vmlinuz', 200, true], ['/initrd.img', 200, true]]);
    expect(boot.log).toMatch(/Command line: (vmlinuz )?initrd=initrd\.img console=ttyS0,115200 panic=-1 root=ram/);
  }, REQUEST_MS + NGINX_MS + 60_000);

  it('the ISO as a CD-ROM under OVMF (ipxe.efi, no ROM on the NIC) asks the server as x86_64 efi, and boots the slim image it is sent', async () => {
    const mac = '52:54:00:1a:00:02';
    const uuid = '8d9a7c1e-2b3f-4e5a-9c6d-000000000002';
    const boot = await bootToNginx('iso-uefi', { firmware: 'uefi', nicRom: '', cdrom: join(out, 'ipxe.iso'), memoryMiB: 256 }, mac, uuid);
    expect(boot.params).toEqual({ mac, uuid, buildarch: 'x86_64', platform: 'efi' });
    expect(boot.answer.status).toBe(200);
    expect(boot.answer.body).toContain('<title>Welcome to nginx!</title>');
    // OVMF shows iPXE's console on the serial port: the embedded script's own words, then Linux
    expect(boot.log).toContain(`aim: asking ${chain} what ${mac} (${uuid}, x86_64 efi) boots`);
    expect(boot.requests.filter((r) => r.path === '/vmlinuz' || r.path === '/initrd.img').map((r) => [r.path, r.status, r.complete])).toEqual([['/vmlinuz', 200, true], ['/initrd.img', 200, true]]);
    expect(boot.log).toMatch(/Command line: (vmlinuz )?initrd=initrd\.img console=ttyS0,115200 panic=-1 root=ram/);
  }, REQUEST_MS + NGINX_MS + 60_000);
});
