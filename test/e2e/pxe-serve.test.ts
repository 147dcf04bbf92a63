/**
 * `aim pxe serve` on 127.0.0.1 against images with a stand-in kernel (test/helpers/fake-kernel):
 * the assignment commands, the scripts each machine gets, the kernel and the initrd byte for
 * byte as `aim build --format pxe` writes them, ranges and ETags, every hostile request target and
 * method, connection and time limits, flat memory while serving large initrds, boot events, and
 * assignments changed while the server runs. All against the real server process, from the CLI.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initRepository, openRepository } from '../../src/core/repository/repository.js';
import { aim } from '../helpers/cli.js';
import { addBootableImage, putFile } from '../helpers/fake-kernel.js';
import { httpGet, rawRequest, startServe, type RunningServe, type ServeEventJson } from '../helpers/pxe-serve.js';
import { pollFor } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let serve: RunningServe;
const MAC = { a: '52:54:00:00:0a:01', b: '52:54:00:00:0b:01', big: '52:54:00:00:0c:01', none: '52:54:00:00:ff:01' } as const;
const LIMITS = { perIp: 4, max: 24, headerS: 2, idleS: 5 };
/** The random file of the large image: its initrd does not compress. */
const BIG_MIB = 160;

const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);
const assign = async (...args: string[]) => {
  const r = await run('pxe', 'assign', ...args);
  expect(r.exitCode, r.stdout + r.stderr).toBe(0);
  return r;
};
/** A distinct client address per use: the per-address limit is part of what is tested. */
let nextAddress = 10;
const from = () => `127.0.0.${nextAddress++}`;
const script = async (mac: string, extra = '') => (await httpGet(`${serve.url}/boot.ipxe?mac=${mac}${extra}`, { localAddress: from() })).body.toString();
const urls = (text: string) => ({ kernel: /^kernel (\S+)/m.exec(text)?.[1], initrd: /^initrd (\S+)/m.exec(text)?.[1] });

interface BuildJson {
  artifacts: { path: string }[];
}

beforeAll(async () => {
  tmp = await tempDir('aim-pxe-serve-');
  repo = join(tmp.dir, 'repo');
  await initRepository(repo);
  const r = await openRepository(repo);
  const sparse = await putFile(r, '/data.img', Buffer.alloc(8192, 'd'), { size: 64 * 2 ** 20, sparse: [[2 ** 20, 8192]], mode: 0o644 });
  await r.catalog.setTag('test/a:1', await addBootableImage(r, [sparse]));
  await r.catalog.setTag('test/b:1', await addBootableImage(r, [await putFile(r, '/b.txt', 'image b\n', { mode: 0o644 })]));
  await r.catalog.setTag('test/big:1', await addBootableImage(r, [await putFile(r, '/random.bin', randomBytes(BIG_MIB * 2 ** 20), { mode: 0o644 })]));
  await r.close();
  const built = await run<BuildJson>('build', 'test/a:1', '--format', 'pxe', '--entrypoint', '/app', '--out', join(tmp.dir, 'bundle'));
  expect(built.exitCode, built.stderr).toBe(0);
  await assign(MAC.a, 'test/a:1', '--entrypoint', '/app', '--kernel-args', 'loglevel=4 ip=${net0/ip}', '--channel', 'prod');
  await assign(MAC.big, 'test/big:1', '--entrypoint', '/app');
  serve = await startServe(repo, [
    '--listen', '127.0.0.1:0', '--cache-dir', join(tmp.dir, 'cache'),
    '--max-connections', String(LIMITS.max), '--max-connections-per-ip', String(LIMITS.perIp),
    '--header-timeout', `${LIMITS.headerS}s`, '--idle-timeout', `${LIMITS.idleS}s`,
  ]);
}, 300_000);
afterAll(async () => {
  await serve?.stop();
  await tmp?.cleanup();
});

describe('assignments from the CLI', () => {
  it('refuses bad selectors, unknown images, images that cannot boot and unsafe kernel arguments, with their codes', async () => {
    const cases: [string[], number, RegExp][] = [
      [['pxe', 'assign', '52:54:00:zz:00:01', 'test/a:1'], 2, /machine selector/],
      [['pxe', 'assign', MAC.none, 'test/nope:1'], 3, /no image "test\/nope:1"/],
      [['pxe', 'assign', MAC.none, 'test/a:1'], 2, /records no entrypoint/],
      [['pxe', 'assign', MAC.none, 'test/a:1', '--entrypoint', '/app', '--kernel-args', 'quiet\nchain http://evil/'], 2, /control characters/],
      [['pxe', 'assign', MAC.none, 'test/a:1', '--entrypoint', '/app', '--kernel-args', 'quiet || shell'], 2, /end of the kernel command/],
      [['pxe', 'assign', MAC.none, 'test/a:1', '--entrypoint', '/app', '--channel', 'Prod!'], 2, /--channel/],
      [['pxe', 'unassign', MAC.none], 3, /no assignment for mac:52:54:00:00:ff:01/],
    ];
    for (const [args, code, message] of cases) {
      const r = await run<{ error: { message: string } }>(...args);
      expect(r.exitCode, args.join(' ')).toBe(code);
      expect(r.json.error.message).toMatch(message);
    }
    const list = await run<{ assignments: { selector: { key: string }; imageRef: string; channel?: string; kernelArgs: string; boot: { kernel: { version: string } } }[] }>('pxe', 'list');
    expect(list.json.assignments.map((a) => [a.selector.key, a.imageRef])).toEqual([[`mac:${MAC.a}`, 'test/a:1'], [`mac:${MAC.big}`, 'test/big:1']]);
    expect(list.json.assignments[0]).toMatchObject({ channel: 'prod', kernelArgs: 'loglevel=4 ip=${net0/ip}', boot: { kernel: { version: '6.1.0-test' } } });
  });
});

describe('what a machine gets', () => {
  it('without saying who it is: a script that asks again with its MAC, UUID and architecture', async () => {
    const text = (await httpGet(`${serve.url}/boot.ipxe`, { localAddress: from() })).body.toString();
    expect(text).toMatch(/^#!ipxe\n/);
    expect(text).toMatch(/^chain --replace --autofree \/boot\.ipxe\?mac=\$\{netX\/mac:hexhyp\}&uuid=\$\{uuid\}&buildarch=\$\{buildarch\}&platform=\$\{platform\}$/m);
  });

  it('unassigned: a message on its console, the command that would assign it, and no image', async () => {
    const text = await script(MAC.none, '&uuid=&buildarch=x86_64&platform=efi');
    expect(text).toMatch(/^echo aim: no image is assigned to this machine \(mac:52:54:00:00:ff:01\)\.$/m);
    expect(text).toMatch(/aim pxe assign 52:54:00:00:ff:01 <image>/);
    expect(text).toMatch(/^sleep 30 /m);
    expect(urls(text)).toEqual({ kernel: undefined, initrd: undefined });
    expect(text).toMatch(/^chain --replace --autofree \/boot\.ipxe\?mac=52%3A54%3A00%3A00%3Aff%3A01&buildarch=x86_64&platform=efi$/m);
  });

  it('assigned: its image\'s kernel and initrd with aim\'s command line and the assignment\'s arguments', async () => {
    const text = await script(MAC.a);
    expect(text).toMatch(/^kernel \/boot\/[0-9a-f]{32}\/vmlinuz\?mac=52%3A54%3A00%3A00%3A0a%3A01 initrd=initrd\.img console=ttyS0,115200 panic=-1 root=ram loglevel=4 ip=\$\{net0\/ip\} \|\| goto failed$/m);
    expect(text).toMatch(/^initrd \/boot\/[0-9a-f]{32}\/initrd\.img\?mac=52%3A54%3A00%3A00%3A0a%3A01 \|\| goto failed$/m);
    // relative URLs without a colon: older iPXE would read what comes before one as a scheme
    for (const u of [...text.matchAll(/^(?:kernel|initrd|chain --replace --autofree) (\S+)/gm)].map((m) => m[1]!)) expect(u, u).toMatch(/^\/[^:]*$/);
    expect(text).toMatch(/^boot \|\| goto failed$/m);
  });

  it('the kernel and the initrd, byte for byte as aim build --format pxe writes them, then from the cache with length, ranges and ETag', async () => {
    const { kernel, initrd } = urls(await script(MAC.a));
    const [vmlinuz, image] = await Promise.all(['vmlinuz', 'initrd.img'].map((n) => readFile(join(tmp.dir, 'bundle', n))));
    const k = await httpGet(`${serve.url}${kernel}`, { localAddress: from() });
    expect(k.status).toBe(200);
    expect(k.body.equals(vmlinuz!)).toBe(true);
    // the first answer may stream while the initrd is compressed; either way the same bytes
    const first = await httpGet(`${serve.url}${initrd}`, { localAddress: from() });
    expect(first.status).toBe(200);
    expect(first.body.equals(image!)).toBe(true);
    const again = await httpGet(`${serve.url}${initrd}`, { localAddress: from() });
    expect(again.headers['content-length']).toBe(String(image!.length));
    expect(again.body.equals(image!)).toBe(true);
    const etag = String(again.headers.etag);
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(first.headers.etag).toBe(etag);
    const size = image!.length;
    const range = async (headers: Record<string, string>, method = 'GET') => httpGet(`${serve.url}${initrd}`, { headers, method, localAddress: from() });
    const part = await range({ range: 'bytes=100-1099' });
    expect([part.status, part.headers['content-range'], part.body.equals(image!.subarray(100, 1100))]).toEqual([206, `bytes 100-1099/${size}`, true]);
    const tail = await range({ range: 'bytes=-10' });
    expect(tail.body.equals(image!.subarray(size - 10))).toBe(true);
    expect((await range({ range: 'bytes=0-9', 'if-range': etag })).status).toBe(206);
    expect((await range({ range: 'bytes=0-9', 'if-range': '"stale"' })).status).toBe(200);
    const past = await range({ range: `bytes=${size}-` });
    expect([past.status, past.headers['content-range']]).toEqual([416, `bytes */${size}`]);
    expect((await range({ 'if-none-match': etag })).status).toBe(304);
    const head = await range({}, 'HEAD');
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String(size), 0]);
  });
});

describe('hostile requests against the running server: 4xx, and nothing outside the served set', () => {
  const send = (text: string) => rawRequest(serve.port, text, { localAddress: from() });
  const req = (method: string, target: string, extra = '') => send(`${method} ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${extra}\r\n`);

  it('traversal in every encoding, unknown names and the repository\'s own files', async () => {
    const { kernel } = urls(await script(MAC.a));
    const bootDir = kernel!.split('?')[0]!.replace(/\/vmlinuz$/, '');
    const targets: [string, number][] = [
      ['/../../../../etc/passwd', 400], ['/%2e%2e/%2e%2e/etc/passwd', 400], ['/%252e%252e/%252e%252e/etc/passwd', 400], ['/..%2f..%2f..%2fetc%2fpasswd', 400],
      ['/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd', 400], ['/..\\..\\..\\etc\\passwd', 400], [`${bootDir}/../../catalog.db`, 400], [`${bootDir}/%2e%2e/%2e%2e/catalog.db`, 400],
      ['/catalog.db', 404], ['/aim-repo.json', 404], ['/objects', 404], ['/etc/passwd', 404], [`${bootDir}/initrd.img.tmp`, 404], [`${bootDir}/vmlinuz/`, 400],
      ['/boot.ipxe?mac=52:54:00:00:0a:01%0Aboot', 400], ['/boot.ipxe?mac=52:54:00:00:0a:01&mac=52:54:00:00:0b:01', 400],
    ];
    for (const [target, status] of targets) {
      const r = await req('GET', target);
      expect(r.status, target).toBe(status);
      expect(r.body.toString('latin1'), target).not.toMatch(/root:|SQLite|aim-repository/);
    }
  });

  it('absolute-form, authority-form and asterisk-form targets, other methods, bad requests, oversize headers and targets', async () => {
    expect((await req('GET', 'http://127.0.0.1/boot.ipxe')).status).toBe(400);
    expect((await req('GET', 'http://evil.example/../../etc/passwd')).status).toBe(400);
    const connectAnswer = await req('CONNECT', '127.0.0.1:22');
    expect(connectAnswer.status).toBe(405);
    expect((await req('OPTIONS', '*')).status).toBe(405);
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'OPTIONS', 'PROPFIND']) {
      const r = await req(m, '/boot.ipxe', 'Content-Length: 0\r\n');
      expect(r.status, m).toBe(405);
      if (r.status === 405) expect(r.headers.allow).toBe('GET, HEAD');
    }
    expect((await send('FOO /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n')).status).toBe(400);
    expect((await send('GET /boot.ipxe HTTP/1.1\r\n\r\n')).status).toBe(400); // no Host
    expect((await send('GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')).status).toBe(400);
    expect((await req('GET', '/boot.ipxe', `X-Big: ${'a'.repeat(9000)}\r\n`)).status).toBe(431);
    expect((await req('GET', `/boot.ipxe?${'a=b&'.repeat(300)}`)).status).toBe(414);
    expect((await req('GET', `/${'x/'.repeat(1100)}`)).status).toBe(414);
  });

  it('serves only what is assigned now: an image unassigned is gone at once', async () => {
    await assign(MAC.b, 'test/b:1', '--entrypoint', '/app');
    const { kernel } = urls(await pollFor('the new assignment', async () => {
      const t = await script(MAC.b);
      return urls(t).kernel ? t : undefined;
    }, 10_000));
    expect((await httpGet(`${serve.url}${kernel}`, { localAddress: from() })).status).toBe(200);
    expect((await run('pxe', 'unassign', MAC.b)).exitCode).toBe(0);
    expect((await httpGet(`${serve.url}${kernel}`, { localAddress: from() })).status).toBe(404);
    expect(await script(MAC.b)).toMatch(/no image is assigned to this machine/);
  });
});

describe('limits: a slow or hostile client cannot exhaust the server', () => {
  /** A connection that sends a request line and then a header byte every 300 ms, never finishing. */
  function slowloris(localAddress: string): Promise<{ socket: Socket; closed: Promise<number> }> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: serve.port, localAddress });
      let timer: NodeJS.Timeout | undefined;
      const closed = new Promise<number>((done) => socket.once('close', () => {
        clearInterval(timer);
        done(Date.now());
      }));
      socket.on('error', () => undefined);
      socket.once('connect', () => {
        socket.write('GET /boot.ipxe HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        timer = setInterval(() => socket.write('a'), 300);
        resolve({ socket, closed });
      });
      socket.once('error', reject);
    });
  }

  it('per address: connections beyond the limit are closed at once, others still served', async () => {
    const addr = from();
    const held = await Promise.all(Array.from({ length: LIMITS.perIp }, () => slowloris(addr)));
    const extra = await rawRequest(serve.port, 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: addr, timeoutMs: 1500 });
    expect(extra.status).toBe(0);
    expect(extra.closedByServer).toBe(true);
    expect((await httpGet(`${serve.url}/boot.ipxe`, { localAddress: from() })).status).toBe(200);
    await serve.waitFor((e) => e.event === 'refused' && e.address === addr, 'the refusal event');
    for (const h of held) h.socket.destroy();
  });

  it('slowloris: every connection slot held by trickled headers is freed by the header timeout', async () => {
    const t0 = Date.now();
    const addresses = Array.from({ length: LIMITS.max / LIMITS.perIp }, () => from());
    const held = (await Promise.all(addresses.map((a) => Promise.all(Array.from({ length: LIMITS.perIp }, () => slowloris(a)))))).flat();
    // full: a newcomer from yet another address is turned away
    const newcomer = from();
    const refused = await rawRequest(serve.port, 'GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: newcomer, timeoutMs: 1500 });
    expect(refused.status).toBe(0);
    // the server closes the trickling connections itself (header timeout), and then serves again
    const closedAt = await Promise.all(held.map((h) => h.closed));
    expect(Math.max(...closedAt) - t0).toBeLessThan(60_000);
    const later = await pollFor('a slot to be free', async () => {
      const r = await httpGet(`${serve.url}/boot.ipxe`, { localAddress: newcomer }).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    }, 30_000);
    expect(later.status).toBe(200);
    await serve.waitFor((e) => e.event === 'client-error' && e.status === 408, 'a header timeout event');
  }, 120_000);

  it('a client that stops reading an initrd is cut by the idle timeout, and the event says incomplete', async () => {
    const { initrd } = urls(await script(MAC.big));
    const address = from();
    // prepared (cached) first, so the stall is the client's, not the compressor's
    const whole = await httpGet(`${serve.url}${initrd}`, { localAddress: from(), discard: true });
    expect(whole.status).toBe(200);
    const stalled = connect({ host: '127.0.0.1', port: serve.port, localAddress: address });
    stalled.on('error', () => undefined);
    stalled.once('connect', () => {
      stalled.write(`GET ${initrd} HTTP/1.1\r\nHost: x\r\n\r\n`);
      stalled.pause(); // never reads: the socket buffers fill and the server can send no more
    });
    try {
      // the server gives up on it (the response ends incomplete) while the client still holds the connection
      const event = await serve.waitFor((e) => e.event === 'request' && e.address === address, 'the stalled request\'s event', 60_000);
      expect(event).toMatchObject({ status: 200, complete: false, kind: 'initrd', machine: `mac:${MAC.big}` });
      expect(Number(event.bytes)).toBeLessThan(whole.bytes);
      expect(Number(event.ms)).toBeGreaterThanOrEqual(LIMITS.idleS * 1000);
    } finally {
      stalled.destroy();
    }
  }, 120_000);
});

describe('memory stays flat while serving', () => {
  const rss = async (pid: number, field: 'VmRSS' | 'VmHWM') => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

  it(`8 machines fetching a ${BIG_MIB} MiB initrd that does not compress at once`, async () => {
    const { initrd } = urls(await script(MAC.big));
    await httpGet(`${serve.url}${initrd}`, { method: 'HEAD', localAddress: from() });
    // the peak from here on (clear_refs 5 resets VmHWM), not from planning or earlier tests
    await writeFile(`/proc/${serve.pid}/clear_refs`, '5');
    const before = await rss(serve.pid, 'VmRSS');
    const answers = await Promise.all(Array.from({ length: 8 }, () => httpGet(`${serve.url}${initrd}`, { localAddress: from(), timeoutMs: 120_000, discard: true })));
    const peak = await rss(serve.pid, 'VmHWM');
    const sizes = new Set(answers.map((a) => a.bytes));
    expect(sizes.size).toBe(1);
    expect(new Set(answers.map((a) => a.sha256)).size).toBe(1);
    expect([...sizes][0]).toBeGreaterThan(BIG_MIB * 2 ** 20);
    console.log(`pxe serve: RSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB while 8 clients took ${(8 * [...sizes][0]! / 2 ** 20).toFixed(0)} MiB`);
    // far less than one initrd: nothing is read whole
    expect(peak - before).toBeLessThan(BIG_MIB / 2);
  }, 300_000);
});

describe('boot events and assignments while serving', () => {
  it('records what each machine fetched, bytes and completeness: aim pxe events', async () => {
    const ev = await pollFor('the boot events to be written', async () => {
      const r = await run<{ events: { machine?: string; kind: string; status: number; bytes: number; complete: boolean; imageId?: string; address: string }[] }>('pxe', 'events', '--machine', MAC.big, '--limit', '100');
      return r.json.events.some((e) => !e.complete) ? r.json.events : undefined;
    }, 10_000);
    expect(ev.some((e) => e.kind === 'script' && e.status === 200 && e.complete)).toBe(true);
    expect(ev.some((e) => e.kind === 'initrd' && e.status === 200 && e.complete && e.bytes > BIG_MIB * 2 ** 20)).toBe(true);
    expect(ev.some((e) => e.kind === 'initrd' && !e.complete)).toBe(true);
    expect(ev.every((e) => e.machine === `mac:${MAC.big}` && e.address.startsWith('127.0.0.'))).toBe(true);
    const human = await aim(['pxe', 'events', '--repo', repo, '--machine', MAC.big]).catch(() => undefined);
    expect(human?.exitCode).toBe(0);
  });

  it('a machine assigned while the server runs boots its image at its next request; a label and the default catch the rest', async () => {
    const unknown = '52:54:00:00:0d:01';
    expect(await script(unknown)).toMatch(/no image is assigned/);
    await assign('platform=efi', 'test/b:1', '--entrypoint', '/app');
    await assign('default', 'test/a:1', '--entrypoint', '/app');
    const efi = await pollFor('the label assignment', async () => {
      const t = await script(unknown, '&platform=efi');
      return /assigned by label:platform=efi/.test(t) ? t : undefined;
    }, 10_000);
    expect(efi).toMatch(/boots test\/b:1/);
    expect(await script(unknown, '&platform=pcbios')).toMatch(/boots test\/a:1 \(\w+\) assigned by default/);
    // the MAC's own assignment still wins over both
    expect(await script(MAC.big, '&platform=efi')).toMatch(/boots test\/big:1/);
    await serve.waitFor((e: ServeEventJson) => e.event === 'assignments' && e.changed === true, 'the reload event');
  });

  it('stops on SIGTERM: exit 0, and every line it printed was one JSON event, the last "stopped"', async () => {
    const code = await serve.stop('SIGTERM');
    expect(code).toBe(0);
    expect(serve.events.at(-1)).toMatchObject({ event: 'stopped', reason: 'SIGTERM' });
    expect(serve.events.every((e) => typeof e.event === 'string' && typeof e.at === 'string')).toBe(true);
  });
});
