/**
 * Bare metal, emulated: in network namespaces the test creates (a bridge, taps, 198.18.0.0/24),
 * a plain DHCP server (dnsmasq, DHCP only: "the site's") hands out addresses, and `aim pxe serve
 * --interface br0 --dhcp proxy` answers PXE next to it through its own dnsmasq. QEMU (TCG)
 * machines on taps boot from the network into slim images served straight from the repository:
 * - SeaBIOS with the NIC's iPXE ROM (QEMU's): proxyDHCP gives iPXE the script URL; slim redis
 *   boots and the test talks to redis over the bridge. Beside it a machine nobody assigned boots
 *   while a label assignment makes every machine ask aim: its console shows aim's message;
 * - the machine is assigned slim nginx and boots again under OVMF with the NIC's ROM left out,
 *   so the firmware's own PXE client asks: proxyDHCP (option 93: UEFI) gives ipxe.efi, fetched by
 *   TFTP from aim's dnsmasq, which then asks for the script: nginx answers.
 * DHCP answers by architecture, silence towards machines aim does not boot, and the TFTP files
 * are checked with a DHCP probe (test/helpers/dhcp-probe.mjs) from another namespace.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVm, type RunningVm } from '../../src/run/qemu.js';
import { aim } from '../helpers/cli.js';
import { pollFor } from '../helpers/processes.js';
import { startServe, type RunningServe, type ServeEventJson } from '../helpers/pxe-serve.js';
import { tempDir } from '../helpers/tmp.js';
import { createLabNetwork, LAB, nodeInNetns, type LabNetwork } from './helpers/netns.js';
import { addKernelCore, addSlimNginx } from './helpers/slim-nginx.js';
import { addSlimRedis } from './helpers/slim-redis.js';

const PROBE = fileURLToPath(new URL('../helpers/dhcp-probe.mjs', import.meta.url));
const MACHINE = '52:54:00:18:00:01';
const STRANGER = '52:54:00:18:00:99';
const BOOT_URL = `http://${LAB.server}:8080/boot.ipxe`;
/** From QEMU's start to the guest's address on its console (TCG; the iPXE stage alone takes 15-20 s). */
const BOOT_DEADLINE_MS = 180_000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let net: LabNetwork | undefined;
let site: ResultPromise | undefined;
let serve: RunningServe | undefined;
const vms: RunningVm[] = [];

const run = async <T = Record<string, unknown>>(...args: string[]) => {
  const r = await aim<T>([...args, '--repo', repo]);
  expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}${r.stdout.slice(-1000)}`).toBe(0);
  return r;
};

interface Offer {
  from: string;
  yiaddr: string;
  siaddr: string;
  file?: string;
  vendorClass?: string;
  pxe?: Record<string, string>;
}
/**
 * A PXE client's DISCOVER from the client namespace (and, with request, its ask on port 4011):
 * done when both servers offered, or a second after the site's offer of an address (which comes
 * at once, or after the site pings a new address: about 3 s).
 */
async function probe(mac: string, arch: number, options: { ipxe?: boolean; request?: boolean } = {}): Promise<{ offers: Offer[]; ack?: Offer[] }> {
  const args = ['--mac', mac, '--arch', String(arch), '--wait-ms', '10000', '--until', '2', '--settle', '1000', ...(options.ipxe ? ['--ipxe'] : []), ...(options.request ? ['--request', '--address', LAB.client] : [])];
  const r = await execa('ip', ['netns', 'exec', net!.client, process.execPath, PROBE, ...args], { timeout: 30_000 });
  return JSON.parse(r.stdout) as { offers: Offer[]; ack?: Offer[] };
}
const proxyOffer = (p: { offers: Offer[] }) => p.offers.find((o) => o.from === `${LAB.server}:67`);
const siteOffer = (p: { offers: Offer[] }) => p.offers.find((o) => o.from === `${LAB.site}:67`);

/** The site's DHCP server: dnsmasq handing out addresses and nothing about booting. */
async function startSiteDhcp(dir: string): Promise<{ child: ResultPromise }> {
  const conf = join(dir, 'site-dhcp.conf');
  await writeFile(conf, ['port=0', 'interface=eth0', 'bind-dynamic', `dhcp-range=${LAB.range[0]},${LAB.range[1]},255.255.255.0,10m`, `dhcp-leasefile=${join(dir, 'site.leases')}`, 'log-dhcp', ''].join('\n'));
  const child = execa('ip', ['netns', 'exec', net!.site, 'dnsmasq', '--keep-in-foreground', `--conf-file=${conf}`, '--log-facility=-', `--pid-file=${join(dir, 'site.pid')}`], { reject: false, all: true, buffer: true });
  let out = '';
  child.all?.on('data', (d: Buffer) => (out += d.toString()));
  await pollFor('the site DHCP server', () => (/DHCP, IP range/.test(out) ? true : undefined), 15_000);
  // wrapped: an execa subprocess is a promise, which an async function would wait for
  return { child };
}

beforeAll(async () => {
  tmp = await tempDir('aim-pxe-serve-boot-');
  repo = join(tmp.dir, 'repo');
  await run('repo', 'init');
  // three independent writes into one repository, at the same time
  await Promise.all([addSlimNginx(repo), addSlimRedis(repo), addKernelCore(repo)]);
  await run('pxe', 'assign', MACHINE, 'slim/redis:1');
  net = await createLabNetwork();
  site = (await startSiteDhcp(tmp.dir)).child;
  serve = await startServe(repo, ['--interface', 'br0', '--dhcp', 'proxy', '--cache-dir', join(tmp.dir, 'cache')], { netns: net.lab });
  expect(serve.url).toBe(`http://${LAB.server}:8080`);
}, 900_000);

afterAll(async () => {
  // everything this file started goes, whatever failed
  for (const vm of vms) await vm.stop().catch(() => undefined);
  await serve?.stop().catch(() => undefined);
  if (site) {
    site.kill('SIGTERM');
    await site.catch(() => undefined);
  }
  await net?.remove();
  const left = await execa('ip', ['netns', 'list']);
  expect(left.stdout).not.toMatch(new RegExp(`aimpxe-[a-z]+-${process.pid}-`));
  await tmp?.cleanup();
}, 60_000);

describe('proxyDHCP next to the site\'s DHCP server', () => {
  it('answers an assigned machine by architecture (option 93) with the iPXE to fetch, and iPXE with the script URL; a machine aim does not boot gets no answer; TFTP hands out the iPXE binaries', async () => {
    // one after another: probes side by side would all bind port 68, where a broadcast reaches only some
    const bios = await probe(MACHINE, 0, { request: true });
    const uefi7 = await probe(MACHINE, 7, { request: true });
    const uefi9 = await probe(MACHINE, 9, { request: true });
    const ipxe0 = await probe(MACHINE, 0, { ipxe: true });
    const ipxe7 = await probe(MACHINE, 7, { ipxe: true });
    const stranger = await probe(STRANGER, 0);
    const strangerIpxe = await probe(STRANGER, 7, { ipxe: true });
    // the site gives the address, aim only boot information
    expect(siteOffer(bios)?.yiaddr).toMatch(/^198\.18\.0\.1[0-5]\d$/);
    expect(proxyOffer(bios)).toMatchObject({ yiaddr: '0.0.0.0', vendorClass: 'PXEClient' });
    expect(bios.ack?.[0]?.file).toBe('undionly.kpxe');
    for (const [arch, uefi] of [[7, uefi7], [9, uefi9]] as const) {
      expect(proxyOffer(uefi!), `arch ${arch}`).toMatchObject({ yiaddr: '0.0.0.0' });
      expect(uefi!.ack?.[0]?.file, `arch ${arch}`).toBe('ipxe.efi');
    }
    // iPXE takes a proxyDHCP answer only with a next server beside the file name
    for (const [arch, p] of [[0, ipxe0], [7, ipxe7]] as const) expect(proxyOffer(p!), `iPXE, arch ${arch}`).toMatchObject({ file: BOOT_URL, siaddr: LAB.server });
    // the stranger still gets its address from the site, and nothing from aim
    for (const p of [stranger, strangerIpxe]) {
      expect(siteOffer(p)).toBeDefined();
      expect(proxyOffer(p)).toBeUndefined();
    }
    await Promise.all(
      ['undionly.kpxe', 'ipxe.efi'].map(async (file) => {
        const out = join(tmp.dir, `tftp-${file}`);
        await execa('ip', ['netns', 'exec', net!.client, 'busybox', 'tftp', '-g', '-r', file, '-l', out, LAB.server], { timeout: 60_000 });
        expect((await readFile(out)).equals(await readFile(join('/usr/lib/ipxe', file))), file).toBe(true);
      }),
    );
    await serve!.waitFor((e) => e.event === 'dhcp' && e.mac === MACHINE && e.bootfile === 'ipxe.efi', 'dnsmasq\'s answer as an event');
    await serve!.waitFor((e) => e.event === 'tftp' && e.file === 'ipxe.efi' && e.address === LAB.client, 'the TFTP event');
  }, 120_000);
});

/** Starts a machine with no disk on a new tap of the bridge. */
async function startMachine(name: string, mac: string, firmware: 'bios' | 'uefi', rom: 'ipxe' | 'firmware'): Promise<RunningVm> {
  const dir = join(tmp.dir, name);
  await mkdir(dir);
  const tap = await net!.addTap(`tap-${name}`);
  const vm = await startVm({ artifact: { kind: 'network', rom }, firmware, tap: { ifname: tap, mac, netns: net!.lab }, dir, memoryMiB: 256, forwards: [], accel: 'tcg', tbSizeMiB: 128, console: 'file', maxSeconds: 300 });
  vms.push(vm);
  return vm;
}

/** The address the site's DHCP gave the booted guest, from its console. */
async function guestAddress(vm: RunningVm): Promise<{ address: string; seconds: number }> {
  const up = await vm.waitForConsole(/aim: eth0 has address 198\.18\.0\.\d+/, BOOT_DEADLINE_MS);
  return { address: /aim: eth0 has address (198\.18\.0\.\d+)/.exec(await vm.console())![1]!, seconds: up.seconds };
}

/** The requests one machine made, from the server's events. */
const fetched = (mac: string, after: number) => serve!.events.filter((e, i) => i >= after && e.event === 'request' && e.machine === `mac:${mac}`) as (ServeEventJson & { kind: string; status: number; bytes: number; length?: number; complete: boolean; imageId: string; address: string })[];

describe('machines boot from aim pxe serve into slim images', () => {
  let redisImage: string;
  let nginxImage: string;
  beforeAll(async () => {
    redisImage = (await run<{ id: string }>('image', 'inspect', 'slim/redis:1')).json.id;
    nginxImage = (await run<{ id: string }>('image', 'inspect', 'slim/nginx:1')).json.id;
  }, 120_000);

  it('SeaBIOS, the NIC\'s iPXE ROM: slim redis boots and answers over the bridge; a machine nobody assigned gets aim\'s message and no image', async () => {
    // a label assignment: dnsmasq now answers every machine (labels are matched over HTTP),
    // rereading its hosts file without a restart
    const dnsmasqPid = serve!.events.find((e) => e.event === 'dnsmasq' && e.message === 'started')?.pid;
    let mark = serve!.events.length;
    await run('pxe', 'assign', 'rack=r9', 'slim/nginx:1');
    await serve!.waitFor((e, i) => i >= mark && e.event === 'dhcp' && /^read .*\/hosts$/.test(String(e.message)), 'dnsmasq to reread its hosts file', 15_000);
    expect(proxyOffer(await probe(STRANGER, 0, { ipxe: true }))).toMatchObject({ file: BOOT_URL });
    expect(serve!.events.filter((e) => e.event === 'dnsmasq' && e.message === 'started').map((e) => e.pid)).toEqual([dnsmasqPid]);

    mark = serve!.events.length;
    const [machine, stranger] = await Promise.all([startMachine('bios', MACHINE, 'bios', 'ipxe'), startMachine('stranger', STRANGER, 'bios', 'ipxe')]);
    await stranger.waitForConsole(/aim: no image is assigned to this machine \(mac:52:54:00:18:00:99\)\./, BOOT_DEADLINE_MS);
    await stranger.stop();
    expect(await stranger.console()).toMatch(/aim: aim pxe assign 52:54:00:18:00:99 <image>/);
    const asked = fetched(STRANGER, mark);
    expect(asked.map((r) => [r.kind, r.status])).toContainEqual(['unassigned', 200]);
    expect(asked.filter((r) => r.kind === 'kernel' || r.kind === 'initrd')).toEqual([]);

    const { address, seconds } = await guestAddress(machine);
    const answer = await pollFor('redis to answer', async () => {
      const out = await nodeInNetns(net!.client, `
        import { connect } from 'node:net';
        const s = connect(6379, '${address}');
        let got = '';
        s.setTimeout(3000, () => s.destroy());
        s.on('connect', () => s.write('PING\\r\\nSET pxe served-from-aim\\r\\nGET pxe\\r\\n'));
        s.on('data', (d) => { got += d; if (got.includes('served-from-aim')) s.end(); });
        s.on('error', () => {});
        s.on('close', () => console.log(JSON.stringify(got)));
      `).catch(() => '""');
      const text = JSON.parse(out) as string;
      return text.includes('served-from-aim') ? text : undefined;
    }, 60_000);
    expect(answer).toBe('+PONG\r\n+OK\r\n$15\r\nserved-from-aim\r\n');
    console.log(`pxe serve, SeaBIOS + iPXE ROM: slim redis up at ${address} ${seconds.toFixed(1)} s after QEMU started`);
    await machine.stop();
    const reqs = fetched(MACHINE, mark);
    const byKind = (k: string) => reqs.filter((r) => r.kind === k && r.status === 200);
    expect(byKind('script')[0]).toMatchObject({ imageId: redisImage, complete: true });
    for (const k of ['kernel', 'initrd']) {
      const r = byKind(k).at(-1)!;
      expect(r, k).toMatchObject({ imageId: redisImage, complete: true });
      if (r.length !== undefined) expect(r.bytes).toBe(r.length);
      expect(r.address).toMatch(/^198\.18\.0\.1[0-5]\d$/);
    }
  }, 300_000);

  it('assigned slim nginx, it boots again under OVMF\'s own PXE client: ipxe.efi by TFTP, then nginx answers', async () => {
    await run('pxe', 'assign', MACHINE, 'slim/nginx:1');
    // nginx's files, prepared for the label assignment, stay: the same boot
    await run('pxe', 'unassign', 'rack=r9');
    await serve!.waitFor((e) => e.event === 'prepare' && e.imageId === nginxImage && e.artifact === 'initrd' && e.status === 'done', 'the nginx initrd to be prepared', 120_000);
    const mark = serve!.events.length;
    const vm = await startMachine('uefi', MACHINE, 'uefi', 'firmware');
    const { address, seconds } = await guestAddress(vm);
    const page = await pollFor('nginx to answer', async () => {
      const out = await nodeInNetns(net!.client, `try { const r = await fetch('http://${address}/', { signal: AbortSignal.timeout(3000) }); console.log(r.status, await r.text()); } catch { console.log('0'); }`);
      return out.startsWith('200 ') ? out : undefined;
    }, 60_000);
    expect(page).toContain('<title>Welcome to nginx!</title>');
    console.log(`pxe serve, OVMF PXE → TFTP ipxe.efi → HTTP: slim nginx up at ${address} ${seconds.toFixed(1)} s after QEMU started`);
    await vm.stop();
    const since = serve!.events.slice(mark);
    expect(since.some((e) => e.event === 'dhcp' && e.mac === MACHINE && e.bootfile === 'ipxe.efi')).toBe(true);
    expect(since.some((e) => e.event === 'tftp' && e.file === 'ipxe.efi' && e.complete === true)).toBe(true);
    expect(since.some((e) => e.event === 'dhcp' && e.mac === MACHINE && e.bootfile === BOOT_URL)).toBe(true);
    const reqs = fetched(MACHINE, mark);
    expect(reqs.filter((r) => r.status === 200 && r.complete).map((r) => [r.kind, r.imageId])).toEqual(expect.arrayContaining([['script', nginxImage], ['kernel', nginxImage], ['initrd', nginxImage]]));
    expect(reqs.some((r) => r.imageId === redisImage)).toBe(false);
    const events = await run<{ events: { kind: string; imageId?: string; complete: boolean }[] }>('pxe', 'events', '--machine', MACHINE, '--limit', '1000');
    const images = new Set(events.json.events.filter((e) => e.kind === 'initrd' && e.complete).map((e) => e.imageId));
    expect(images).toEqual(new Set([redisImage, nginxImage]));
  }, 300_000);
});
