/**
 * Bare metal, emulated: in network namespaces the test creates (a bridge, taps, 198.18.0.0/24),
 * a plain DHCP server (dnsmasq, DHCP only: "the site's") hands out addresses, and `aim pxe serve
 * --interface br0 --dhcp proxy` answers PXE next to it through its own dnsmasq. QEMU (TCG) machines
 * on a tap boot from the network into slim images served straight from the repository:
 * - SeaBIOS with the NIC's iPXE ROM (QEMU's): proxyDHCP gives iPXE the script URL; the slim
 *   redis image boots and the test talks to redis over the bridge;
 * - the machine is assigned the slim nginx image and boots again under OVMF with the NIC's ROM
 *   left out, so the firmware's own PXE client asks: proxyDHCP (option 93: UEFI) gives ipxe.efi,
 *   fetched by TFTP from aim's dnsmasq, which then asks for the script: nginx answers.
 * DHCP answers by architecture (BIOS undionly.kpxe, UEFI ipxe.efi, iPXE the URL), the TFTP
 * files, an unassigned machine's message and dnsmasq rereading its hosts file when assignments
 * change are checked with a DHCP probe (test/helpers/dhcp-probe.mjs) from another namespace.
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
import { prepareSlimNginx } from './helpers/slim-nginx.js';
import { addSlimRedis } from './helpers/slim-redis.js';

const PROBE = fileURLToPath(new URL('../helpers/dhcp-probe.mjs', import.meta.url));
const MACHINE = '52:54:00:18:00:01';
const STRANGER = '52:54:00:18:00:99';
const BOOT_URL = `http://${LAB.server}:8080/boot.ipxe`;

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
  file?: string;
  vendorClass?: string;
  pxe?: Record<string, string>;
}
/** A PXE client's DISCOVER from the client namespace (and, with request, its ask on port 4011). */
async function probe(mac: string, arch: number, options: { ipxe?: boolean; request?: boolean } = {}): Promise<{ offers: Offer[]; ack?: Offer[] }> {
  const args = ['--mac', mac, '--arch', String(arch), '--wait-ms', '3000', ...(options.ipxe ? ['--ipxe'] : []), ...(options.request ? ['--request', '--address', LAB.client] : [])];
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
  await prepareSlimNginx(repo);
  await addSlimRedis(repo);
  await run('pxe', 'assign', MACHINE, 'slim/redis:1');
  net = await createLabNetwork();
  site = (await startSiteDhcp(tmp.dir)).child;
  serve = await startServe(repo, ['--interface', 'br0', '--dhcp', 'proxy', '--cache-dir', join(tmp.dir, 'cache')], { netns: net.lab });
  expect(serve.url).toBe(`http://${LAB.server}:8080`);
}, 1_500_000);

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
  it('answers PXE clients by architecture (option 93) with the iPXE to fetch, and iPXE with the script URL; the site still gives the address', async () => {
    const bios = await probe(MACHINE, 0, { request: true });
    expect(siteOffer(bios)?.yiaddr).toMatch(/^198\.18\.0\.1[0-5]\d$/);
    expect(proxyOffer(bios)).toMatchObject({ yiaddr: '0.0.0.0', vendorClass: 'PXEClient' });
    expect(bios.ack?.[0]?.file).toBe('undionly.kpxe');
    for (const arch of [7, 9]) {
      const uefi = await probe(MACHINE, arch, { request: true });
      expect(proxyOffer(uefi), `arch ${arch}`).toMatchObject({ yiaddr: '0.0.0.0' });
      expect(uefi.ack?.[0]?.file, `arch ${arch}`).toBe('ipxe.efi');
    }
    for (const arch of [0, 7]) expect(proxyOffer(await probe(MACHINE, arch, { ipxe: true }))?.file, `iPXE, arch ${arch}`).toBe(BOOT_URL);
    await serve!.waitFor((e) => e.event === 'dhcp' && e.mac === MACHINE && e.bootfile === 'ipxe.efi', 'dnsmasq\'s answer as an event');
  }, 120_000);

  it('hands out Debian\'s iPXE binaries by TFTP', async () => {
    for (const file of ['undionly.kpxe', 'ipxe.efi']) {
      const out = join(tmp.dir, `tftp-${file}`);
      await execa('ip', ['netns', 'exec', net!.client, 'busybox', 'tftp', '-g', '-r', file, '-l', out, LAB.server], { timeout: 60_000 });
      expect((await readFile(out)).equals(await readFile(join('/usr/lib/ipxe', file))), file).toBe(true);
    }
    await serve!.waitFor((e) => e.event === 'tftp' && e.file === 'ipxe.efi' && e.address === LAB.client, 'the TFTP event');
  }, 120_000);

  it('an unassigned machine gets no boot answer and, from HTTP, a message; assigning a default makes dnsmasq answer it (hosts file reread, no restart)', async () => {
    expect(proxyOffer(await probe(STRANGER, 0))).toBeUndefined();
    const message = await nodeInNetns(net!.client, `const r = await fetch('${BOOT_URL}?mac=${STRANGER}'); console.log(r.status, await r.text());`);
    expect(message).toMatch(/^200 #!ipxe/);
    expect(message).toMatch(/aim: no image is assigned to this machine \(mac:52:54:00:18:00:99\)/);
    expect(message).not.toMatch(/^kernel /m);
    const dnsmasqPid = serve!.events.find((e) => e.event === 'dnsmasq' && e.message === 'started')?.pid;
    await run('pxe', 'assign', 'default', 'slim/nginx:1');
    await serve!.waitFor((e) => e.event === 'assignments' && e.changed === true, 'the server to see the assignment', 15_000);
    const answered = await pollFor('dnsmasq to answer the stranger', async () => proxyOffer(await probe(STRANGER, 0)), 30_000);
    expect(answered).toMatchObject({ vendorClass: 'PXEClient' });
    // the same dnsmasq: reread, not restarted
    expect(serve!.events.filter((e) => e.event === 'dnsmasq' && e.message === 'started').map((e) => e.pid)).toEqual([dnsmasqPid]);
    await run('pxe', 'unassign', 'default');
  }, 180_000);
});

/** Boots a machine on a new tap of the bridge; the address the site's DHCP gave it, from its console. */
async function bootMachine(name: string, firmware: 'bios' | 'uefi', rom: 'ipxe' | 'firmware'): Promise<{ vm: RunningVm; address: string; seconds: number }> {
  const dir = join(tmp.dir, name);
  await mkdir(dir);
  const tap = await net!.addTap(`tap-${name}`);
  const vm = await startVm({ artifact: { kind: 'network', rom }, firmware, tap: { ifname: tap, mac: MACHINE, netns: net!.lab }, dir, memoryMiB: 256, forwards: [], accel: 'tcg', tbSizeMiB: 128, console: 'file', maxSeconds: 330 });
  vms.push(vm);
  const up = await vm.waitForConsole(/aim: eth0 has address 198\.18\.0\.\d+/, 300_000);
  const address = /aim: eth0 has address (198\.18\.0\.\d+)/.exec(await vm.console())![1]!;
  return { vm, address, seconds: up.seconds };
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

  it('SeaBIOS, the NIC\'s iPXE ROM: slim redis boots and answers over the bridge', async () => {
    const mark = serve!.events.length;
    const { vm, address, seconds } = await bootMachine('bios', 'bios', 'ipxe');
    try {
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
      }, 120_000);
      expect(answer).toBe('+PONG\r\n+OK\r\n$15\r\nserved-from-aim\r\n');
      console.log(`pxe serve, SeaBIOS + iPXE ROM: slim redis up at ${address} ${seconds.toFixed(1)} s after QEMU started`);
      const reqs = fetched(MACHINE, mark);
      const byKind = (k: string) => reqs.filter((r) => r.kind === k && r.status === 200);
      expect(byKind('script')[0]).toMatchObject({ imageId: redisImage, complete: true });
      for (const k of ['kernel', 'initrd']) {
        const r = byKind(k).at(-1)!;
        expect(r, k).toMatchObject({ imageId: redisImage, complete: true });
        if (r.length !== undefined) expect(r.bytes).toBe(r.length);
        expect(r.address).toMatch(/^198\.18\.0\.1[0-5]\d$/);
      }
    } finally {
      await vm.stop();
    }
  }, 480_000);

  it('assigned slim nginx, it boots again under OVMF\'s own PXE client: ipxe.efi by TFTP, then nginx answers', async () => {
    await run('pxe', 'assign', MACHINE, 'slim/nginx:1');
    await serve!.waitFor((e) => e.event === 'prepare' && e.imageId === nginxImage && e.artifact === 'initrd' && e.status !== 'start', 'the nginx initrd to be prepared', 300_000);
    const mark = serve!.events.length;
    const { vm, address, seconds } = await bootMachine('uefi', 'uefi', 'firmware');
    try {
      const page = await pollFor('nginx to answer', async () => {
        const out = await nodeInNetns(net!.client, `try { const r = await fetch('http://${address}/', { signal: AbortSignal.timeout(3000) }); console.log(r.status, await r.text()); } catch { console.log('0'); }`);
        return out.startsWith('200 ') ? out : undefined;
      }, 120_000);
      expect(page).toContain('<title>Welcome to nginx!</title>');
      console.log(`pxe serve, OVMF PXE → TFTP ipxe.efi → HTTP: slim nginx up at ${address} ${seconds.toFixed(1)} s after QEMU started`);
      const since = serve!.events.slice(mark);
      expect(since.some((e) => e.event === 'dhcp' && e.mac === MACHINE && e.bootfile === 'ipxe.efi')).toBe(true);
      expect(since.some((e) => e.event === 'tftp' && e.file === 'ipxe.efi' && e.complete === true)).toBe(true);
      expect(since.some((e) => e.event === 'dhcp' && e.mac === MACHINE && e.bootfile === BOOT_URL)).toBe(true);
      const reqs = fetched(MACHINE, mark);
      expect(reqs.filter((r) => r.status === 200 && r.complete).map((r) => [r.kind, r.imageId])).toEqual(expect.arrayContaining([['script', nginxImage], ['kernel', nginxImage], ['initrd', nginxImage]]));
      expect(reqs.some((r) => r.imageId === redisImage)).toBe(false);
    } finally {
      await vm.stop();
    }
    const events = await run<{ events: { kind: string; imageId?: string; complete: boolean }[] }>('pxe', 'events', '--machine', MACHINE, '--limit', '1000');
    const images = new Set(events.json.events.filter((e) => e.kind === 'initrd' && e.complete).map((e) => e.imageId));
    expect(images).toEqual(new Set([redisImage, nginxImage]));
  }, 780_000);
});
