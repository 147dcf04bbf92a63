import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkKernelArgs } from '../../src/core/pxe/assignments.js';
import { matchAssignment, normalizeMac, parseSelector, type MachineFacts } from '../../src/core/pxe/selector.js';
import { initRepository, openRepository, type Repository } from '../../src/core/repository/repository.js';
import { ArtifactCache, type CacheJob } from '../../src/server/pxe/artifact-cache.js';
import { hostsFileText, ipv4Network, parseDhcpRange, renderDnsmasqConfig, type DnsmasqSettings } from '../../src/server/pxe/dnsmasq-config.js';
import { parseLogLine } from '../../src/server/pxe/dnsmasq.js';
import type { ServeEvent } from '../../src/server/pxe/events.js';
import { answerRange } from '../../src/server/pxe/http-range.js';
import { routeRequest } from '../../src/server/pxe/request-target.js';
import { tempDir } from '../helpers/tmp.js';
import { addBootableImage, putFile } from '../helpers/fake-kernel.js';

const machine = (m: Omit<Partial<MachineFacts>, 'labels'> & { labels?: Record<string, string> }): MachineFacts => ({ ...m, labels: new Map(Object.entries(m.labels ?? {})) });

describe('machine selectors', () => {
  it('reads MACs in any usual spelling, UUIDs, labels and default; refuses the rest', () => {
    for (const mac of ['52:54:00:AB:cd:01', '52-54-00-ab-cd-01', '525400abcd01', '5254.00ab.cd01', 'mac=52:54:00:ab:cd:01']) expect(parseSelector(mac)).toMatchObject({ kind: 'mac', key: 'mac:52:54:00:ab:cd:01' });
    expect(parseSelector('4C4C4544-0042-3510-8052-B4C04F4E4B32')).toMatchObject({ kind: 'uuid', key: 'uuid:4c4c4544-0042-3510-8052-b4c04f4e4b32' });
    expect(parseSelector('rack=r12')).toEqual({ kind: 'label', key: 'label:rack=r12', label: 'rack', value: 'r12' });
    expect(parseSelector('default')).toEqual({ kind: 'default', key: 'default' });
    for (const bad of ['52:54:00:ab:cd', '5:25:40:0a:bc:d01', 'nonsense', 'Rack=r1', 'rack=', 'rack=a b', 'rack=a\nb', 'mac=rack', 'uuid=52:54:00:ab:cd:01']) expect(() => parseSelector(bad), bad).toThrow(/machine selector/);
    expect(normalizeMac('52:54:00:ab:cd')).toBeUndefined();
  });

  it('picks the most specific assignment: MAC, then UUID, then a label, then default', () => {
    const as = ['default', 'label:platform=efi', 'label:buildarch=x86_64', 'uuid:00112233-4455-6677-8899-aabbccddeeff', 'mac:52:54:00:00:00:01'].map((k) => ({ selector: parseSelector(k.replace(/^(mac|uuid|label):/, (_, kind: string) => (kind === 'label' ? '' : `${kind}=`))) }));
    const pick = (m: MachineFacts) => matchAssignment(as, m)?.selector.key;
    expect(pick(machine({ mac: '52:54:00:00:00:01', uuid: '00112233-4455-6677-8899-aabbccddeeff', labels: { platform: 'efi' } }))).toBe('mac:52:54:00:00:00:01');
    expect(pick(machine({ mac: '52:54:00:00:00:02', uuid: '00112233-4455-6677-8899-aabbccddeeff' }))).toBe('uuid:00112233-4455-6677-8899-aabbccddeeff');
    // two labels match: the first by stored form, whatever the order they were made in
    expect(pick(machine({ mac: '52:54:00:00:00:02', labels: { platform: 'efi', buildarch: 'x86_64' } }))).toBe('label:buildarch=x86_64');
    expect(pick(machine({ mac: '52:54:00:00:00:02', labels: { platform: 'pcbios' } }))).toBe('default');
    expect(matchAssignment(as.slice(1), machine({ mac: '52:54:00:00:00:02' }))).toBeUndefined();
  });

  it('keeps kernel arguments to one plain iPXE line', () => {
    expect(checkKernelArgs('  loglevel=4   ip=${net0/ip} ')).toBe('loglevel=4 ip=${net0/ip}');
    for (const bad of ['a\nkernel http://evil/x', 'a || shell', 'a ; shell', 'a && shell', 'quiet #x', 'a="b c"', "a='b'", 'a\\b', 'ä', 'x'.repeat(1025)]) expect(() => checkKernelArgs(bad), bad).toThrow(/--kernel-args/);
  });
});

describe('request targets: an allowlist', () => {
  const id = 'a'.repeat(32);
  it('maps the served names and reads the machine from the query', () => {
    expect(routeRequest('/boot.ipxe')).toMatchObject({ kind: 'script', machine: { labels: new Map() } });
    expect(routeRequest('/boot.ipxe?mac=52%3A54%3A00%3A00%3A00%3A01&uuid=&buildarch=x86_64&platform=efi')).toMatchObject({ kind: 'script', machine: { mac: '52:54:00:00:00:01', labels: new Map([['buildarch', 'x86_64'], ['platform', 'efi']]) } });
    expect(routeRequest(`/boot/${id}/vmlinuz?mac=52:54:00:00:00:01`)).toMatchObject({ kind: 'kernel', bootId: id });
    // what chain.ipxe sends (${netX/mac:hexhyp})
    expect(routeRequest('/boot.ipxe?mac=52-54-00-00-00-0a&uuid=&buildarch=i386&platform=pcbios')).toMatchObject({ kind: 'script', machine: { mac: '52:54:00:00:00:0a' } });
    expect(routeRequest(`/boot/${id}/initrd.img`)).toMatchObject({ kind: 'initrd', bootId: id });
  });

  it('refuses traversal in every encoding, other forms of target and unknown names', () => {
    const cases: [string, number][] = [
      ['/../../etc/passwd', 400],
      ['/%2e%2e/%2e%2e/etc/passwd', 400],
      ['/%252e%252e/etc/passwd', 400],
      ['/..%2f..%2fetc%2fpasswd', 400],
      ['/%c0%ae%c0%ae/etc/passwd', 400],
      ['/..\\..\\etc\\passwd', 400],
      [`/boot/${id}/../../catalog.db`, 400],
      [`/boot/${id}/./vmlinuz`, 400],
      [`/boot/${id}//vmlinuz`, 400],
      ['/boot.ipxe%00', 400],
      ['/boot.ipxe/', 400],
      ['http://127.0.0.1/boot.ipxe', 400],
      ['127.0.0.1:22', 400],
      ['*', 400],
      ['/etc/passwd', 404],
      ['/catalog.db', 404],
      [`/boot/${id}/vmlinuz.bak`, 404],
      [`/boot/${id.toUpperCase()}/vmlinuz`, 404],
      ['/x'.repeat(1100), 414],
      ['/boot.ipxe?mac=52:54:00:00:00:01%0Aboot', 400],
      ['/boot.ipxe?mac=52:54:00:00:00:01&mac=52:54:00:00:00:02', 400],
      ['/boot.ipxe?rack=a%0Ashell', 400],
      ['/boot.ipxe?Rack=a', 400],
      ['/boot.ipxe?uuid=not-a-uuid', 400],
    ];
    for (const [target, status] of cases) expect(routeRequest(target), target).toMatchObject({ status });
  });
});

describe('ranges and conditions', () => {
  const etag = '"abc"';
  it('answers single ranges, suffixes, open ends, If-Range, If-None-Match and unsatisfiable ranges', () => {
    expect(answerRange({}, 1000, etag)).toEqual({ kind: 'full' });
    expect(answerRange({ range: 'bytes=0-99' }, 1000, etag)).toEqual({ kind: 'partial', start: 0, end: 99 });
    expect(answerRange({ range: 'bytes=900-' }, 1000, etag)).toEqual({ kind: 'partial', start: 900, end: 999 });
    expect(answerRange({ range: 'bytes=-100' }, 1000, etag)).toEqual({ kind: 'partial', start: 900, end: 999 });
    expect(answerRange({ range: 'bytes=-5000' }, 1000, etag)).toEqual({ kind: 'partial', start: 0, end: 999 });
    expect(answerRange({ range: 'bytes=990-5000' }, 1000, etag)).toEqual({ kind: 'partial', start: 990, end: 999 });
    expect(answerRange({ range: 'bytes=1000-' }, 1000, etag)).toEqual({ kind: 'unsatisfiable' });
    expect(answerRange({ range: 'bytes=-0' }, 1000, etag)).toEqual({ kind: 'unsatisfiable' });
    expect(answerRange({ range: 'bytes=5-1' }, 1000, etag)).toEqual({ kind: 'full' });
    expect(answerRange({ range: 'bytes=0-1,5-9' }, 1000, etag)).toEqual({ kind: 'full' });
    expect(answerRange({ range: 'items=0-1' }, 1000, etag)).toEqual({ kind: 'full' });
    expect(answerRange({ range: 'bytes=0-99', ifRange: etag }, 1000, etag)).toMatchObject({ kind: 'partial' });
    expect(answerRange({ range: 'bytes=0-99', ifRange: '"other"' }, 1000, etag)).toEqual({ kind: 'full' });
    expect(answerRange({ ifNoneMatch: `"x", W/${etag}` }, 1000, etag)).toEqual({ kind: 'not-modified' });
    expect(answerRange({ ifNoneMatch: '*' }, 1000, etag)).toEqual({ kind: 'not-modified' });
    expect(answerRange({ ifNoneMatch: '"x"', range: 'bytes=0-1' }, 1000, etag)).toMatchObject({ kind: 'partial' });
  });
});

describe('dnsmasq configuration', () => {
  const net = ipv4Network('198.18.5.1', '255.255.255.0');
  const base: DnsmasqSettings = { interface: 'br0', network: net, bootUrl: 'http://198.18.5.1:8080/boot.ipxe', tftp: true, tftpRoot: '/run/x/tftp', hostsFile: '/run/x/hosts', leaseFile: '/run/x/leases', pidFile: '/run/x/pid' };

  it('proxyDHCP: no addresses, iPXE gets the script URL, PXE clients iPXE for their architecture (option 93)', () => {
    expect(net).toEqual({ address: '198.18.5.1', netmask: '255.255.255.0', network: '198.18.5.0', prefix: 24 });
    const conf = renderDnsmasqConfig({ ...base, dhcp: 'proxy' });
    expect(conf).toContain('port=0\n');
    expect(conf).toContain('dhcp-range=198.18.5.0,proxy,255.255.255.0\n');
    // unknown machines get no answer; iPXE takes a proxy answer only with a next server
    expect(conf).toContain('dhcp-ignore=tag:!known\n');
    expect(conf).toContain('dhcp-boot=tag:known,tag:ipxe,http://198.18.5.1:8080/boot.ipxe,,198.18.5.1\n');
    expect(conf).toMatch(/^pxe-service=tag:known,tag:!ipxe,x86PC,"[^"]+",undionly\.kpxe$/m);
    expect(conf).toMatch(/^pxe-service=tag:known,tag:!ipxe,BC_EFI,"[^"]+",ipxe\.efi$/m);
    expect(conf).toMatch(/^pxe-service=tag:known,tag:!ipxe,X86-64_EFI,"[^"]+",ipxe\.efi$/m);
    expect(conf).not.toMatch(/set:aim|tag:aim/);
    expect(conf).not.toMatch(/dhcp-authoritative/);
    expect(() => renderDnsmasqConfig({ ...base, dhcp: 'proxy', tftp: false })).toThrow(/needs TFTP/);
  });

  it('range: addresses from the range, boot files by option 93', () => {
    const conf = renderDnsmasqConfig({ ...base, dhcp: 'range', range: parseDhcpRange('198.18.5.100,198.18.5.150', net) });
    expect(conf).toContain('dhcp-range=198.18.5.100,198.18.5.150,255.255.255.0,1h\n');
    expect(conf).toContain('dhcp-match=set:bios,option:client-arch,0\n');
    expect(conf).toContain('dhcp-match=set:efi64,option:client-arch,7\n');
    expect(conf).toContain('dhcp-boot=tag:known,tag:!ipxe,tag:efi64,ipxe.efi,,198.18.5.1\n');
    expect(conf).toContain('dhcp-boot=tag:known,tag:!ipxe,tag:bios,undionly.kpxe,,198.18.5.1\n');
    expect(conf).toContain('dhcp-boot=tag:known,tag:ipxe,http://198.18.5.1:8080/boot.ipxe,,198.18.5.1\n');
    // the lab's own DHCP: every machine gets an address, only known ones a boot file
    expect(conf).not.toMatch(/dhcp-ignore/);
    for (const bad of ['198.18.5.100', '198.18.6.1,198.18.6.9', '198.18.5.150,198.18.5.100', '198.18.5.1,198.18.5.9', '198.18.5.300,198.18.5.301']) expect(() => parseDhcpRange(bad, net), bad).toThrow(/--dhcp-range/);
  });

  it('knows MAC-assigned machines, or every machine once another kind of assignment exists (no set: tags, which dnsmasq 2.90 cannot reread)', () => {
    const a = (k: string) => ({ selector: parseSelector(k) });
    expect(hostsFileText([])).toBe('');
    expect(hostsFileText([a('52:54:00:00:00:02'), a('52:54:00:00:00:01')])).toBe('52:54:00:00:00:01\n52:54:00:00:00:02\n');
    expect(hostsFileText([a('52:54:00:00:00:01'), a('platform=efi')])).toBe('*:*:*:*:*:*\n');
  });

  it('turns its log into events: PXE answers with the MAC, boot files, TFTP transfers', () => {
    const events: ServeEvent[] = [];
    const tftp: unknown[] = [];
    const s = { emit: (e: ServeEvent) => events.push(e), onTftp: (t: unknown) => tftp.push(t), macs: new Map<string, string>() };
    for (const line of [
      'dnsmasq-dhcp[7]: 2822381684 vendor class: PXEClient:Arch:00007:UNDI:003000',
      'dnsmasq-dhcp[7]: 2822381684 PXE(br0) 52:54:00:77:00:01 proxy',
      'dnsmasq-dhcp[7]: 2822381684 bootfile name: ipxe.efi',
      'dnsmasq-dhcp[7]: 2822381684 sent size:  1 option: 53 message-type  2',
      'dnsmasq-tftp[7]: sent /tmp/x/tftp/ipxe.efi to 198.18.77.100',
      'dnsmasq-tftp[7]: error 8 User aborted the transfer received from 198.18.77.100',
      'dnsmasq: failed to create listening socket for port 67: Address already in use',
    ]) parseLogLine(line, s);
    expect(events.map((e) => e.event)).toEqual(['dhcp', 'dhcp', 'tftp', 'tftp', 'dnsmasq']);
    expect(events[0]).toMatchObject({ mac: '52:54:00:77:00:01', xid: '2822381684' });
    expect(events[1]).toMatchObject({ mac: '52:54:00:77:00:01', bootfile: 'ipxe.efi' });
    expect(events[3]).toMatchObject({ complete: false, address: '198.18.77.100' });
    expect(tftp).toEqual([{ file: 'ipxe.efi', address: '198.18.77.100', complete: true }]);
  });
});

describe('the artifact cache', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => (tmp = await tempDir('aim-pxe-cache-')));
  afterAll(async () => tmp.cleanup());
  const key = (c: string) => `initrd-${c.repeat(64)}`;

  /** A producer the test releases chunk by chunk. */
  function gated() {
    const gates: (() => void)[] = [];
    let produced = 0;
    return {
      async *produce() {
        for (let i = 0; i < 4; i++) {
          await new Promise<void>((r) => gates.push(r));
          produced++;
          yield Buffer.alloc(100_000, 97 + i);
        }
      },
      release: async () => {
        while (gates.length === 0) await new Promise((r) => setTimeout(r, 5));
        gates.shift()!();
      },
      produced: () => produced,
    };
  }

  it('lets readers follow an artifact while it is written, then serves the file', async () => {
    const cache = new ArtifactCache(join(tmp.dir, 'c1'));
    await cache.open();
    const g = gated();
    const first = await cache.get(key('a'), () => g.produce());
    expect('job' in first).toBe(true);
    const job = (first as { job: CacheJob }).job;
    // a second request for the same key joins the same job: produced once
    const second = await cache.get(key('a'), () => {
      throw new Error('produced twice');
    });
    expect((second as { job: unknown }).job).toBe(job);
    const ctl = new AbortController();
    const readers = [0, 150_000].map(async (start) => {
      const parts: Buffer[] = [];
      for await (const c of job.follow(start, ctl.signal)) parts.push(c);
      return Buffer.concat(parts);
    });
    for (let i = 0; i < 4; i++) await g.release();
    const [whole, tail] = await Promise.all(readers);
    const expected = Buffer.concat([0, 1, 2, 3].map((i) => Buffer.alloc(100_000, 97 + i)));
    expect(whole!.equals(expected)).toBe(true);
    expect(tail!.equals(expected.subarray(150_000))).toBe(true);
    expect(await job.done).toMatchObject({ size: 400_000 });
    expect(await cache.get(key('a'), () => g.produce())).toMatchObject({ ready: { size: 400_000 } });
    expect((await readFile(join(tmp.dir, 'c1', key('a')))).equals(expected)).toBe(true);
    expect(await readdir(join(tmp.dir, 'c1', 'tmp'))).toEqual([]);
  });

  it('fails every reader when the producer fails, and keeps nothing', async () => {
    const cache = new ArtifactCache(join(tmp.dir, 'c2'));
    await cache.open();
    const found = await cache.get(key('b'), async function* () {
      yield Buffer.from('partial');
      throw new Error('zstd died');
    });
    const job = (found as { job: CacheJob }).job;
    const read = async () => {
      for await (const _ of job.follow(0, new AbortController().signal));
    };
    await expect(read()).rejects.toThrow(/zstd died/);
    await expect(job.done).rejects.toThrow(/zstd died/);
    expect(existsSync(join(tmp.dir, 'c2', key('b')))).toBe(false);
    expect(await readdir(join(tmp.dir, 'c2', 'tmp'))).toEqual([]);
  });

  it('refuses a producer that gives another length than announced, and prunes what is not kept', async () => {
    const cache = new ArtifactCache(join(tmp.dir, 'c3'));
    await cache.open();
    await expect(cache.ensure(key('c'), async function* () { yield Buffer.from('abc'); }, 4)).rejects.toThrow(/3 bytes, 4 announced/);
    await cache.ensure(key('d'), async function* () { yield Buffer.from('abcd'); }, 4);
    await cache.ensure(key('e'), async function* () { yield Buffer.from('e'); });
    expect(await cache.prune(new Set([key('d')]))).toEqual([key('e')]);
    expect((await readdir(join(tmp.dir, 'c3'))).sort()).toEqual([key('d'), 'tmp']);
  });
});

describe('assignments and boot events in the catalog', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let repo: Repository;
  beforeAll(async () => {
    tmp = await tempDir('aim-pxe-catalog-');
    await initRepository(join(tmp.dir, 'repo'));
    repo = await openRepository(join(tmp.dir, 'repo'));
  });
  afterAll(async () => {
    await repo.close();
    await tmp.cleanup();
  });

  it('one assignment per selector (assigning again replaces it), unassign, events in order with filters', async () => {
    // assignments name images the catalog holds (checked as they are stored)
    const [aaa, bbb, ccc, k] = await Promise.all(['a', 'b', 'c', 'k'].map(async (n) => addBootableImage(repo, [await putFile(repo, '/name', n)])));
    const boot = { platform: 'qemu' as const, modules: [], kernel: { source: 'default' as const, imageId: k!, version: '6.1' } };
    const first = await repo.catalog.pxe.assign({ selector: parseSelector('52:54:00:00:00:01'), imageRef: 'a:1', imageId: aaa!, boot, kernelArgs: '' });
    expect(first.previous).toBeUndefined();
    const again = await repo.catalog.pxe.assign({ selector: parseSelector('52-54-00-00-00-01'), imageRef: 'b:1', imageId: bbb!, boot, kernelArgs: 'quiet', channel: 'prod' });
    expect(again.previous).toMatchObject({ imageRef: 'a:1' });
    expect(again.assignment).toMatchObject({ imageRef: 'b:1', channel: 'prod', kernelArgs: 'quiet', createdAt: first.assignment.createdAt });
    await repo.catalog.pxe.assign({ selector: parseSelector('default'), imageRef: 'c:1', imageId: ccc!, boot, kernelArgs: '' });
    expect((await repo.catalog.pxe.assignments()).map((a) => a.selector.key)).toEqual(['default', 'mac:52:54:00:00:00:01']);
    expect(await repo.catalog.pxe.unassign('default')).toMatchObject({ imageRef: 'c:1' });
    expect(await repo.catalog.pxe.unassign('default')).toBeUndefined();

    const ev = (machine: string, kind: 'script' | 'initrd') => ({ at: new Date().toISOString(), machine, address: '198.18.0.9', kind, path: '/x', status: 200, bytes: 5, complete: true, ms: 1 });
    await repo.catalog.pxe.addEvents([ev('mac:52:54:00:00:00:01', 'script'), ev('mac:52:54:00:00:00:02', 'script'), ev('mac:52:54:00:00:00:01', 'initrd')]);
    const all = await repo.catalog.pxe.events();
    expect(all.map((e) => e.kind)).toEqual(['script', 'script', 'initrd']);
    expect((await repo.catalog.pxe.events({ machine: 'mac:52:54:00:00:00:01' })).map((e) => e.kind)).toEqual(['script', 'initrd']);
    expect((await repo.catalog.pxe.events({ limit: 1 })).map((e) => e.seq)).toEqual([all[2]!.seq]);
    expect(await repo.catalog.pxe.events({ after: all[1]!.seq })).toHaveLength(1);
  });
});
