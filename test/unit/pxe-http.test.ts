import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFile, servePxeBundle, type PxeHttpServer } from '../../src/run/pxe-http.js';
import { qemuArgs } from '../../src/run/qemu.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let server: PxeHttpServer;
let bundle: string;

beforeAll(async () => {
  tmp = await tempDir('aim-pxe-http-');
  bundle = join(tmp.dir, 'bundle');
  await mkdir(join(bundle, 'sub'), { recursive: true });
  await writeFile(join(bundle, 'boot.ipxe'), '#!ipxe\nboot\n');
  await writeFile(join(bundle, 'sub', 'initrd.img'), Buffer.alloc(300_000, 7));
  await writeFile(join(tmp.dir, 'secret'), 'not served');
  server = await servePxeBundle(bundle);
});
afterAll(async () => {
  await server.close();
  await tmp.cleanup();
});

function fetch(method: string, path: string): Promise<{ status: number; length: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('PXE boot server (HTTP)', () => {
  it('serves the bundle\'s files whole, and logs every request', async () => {
    const script = await fetch('GET', '/boot.ipxe');
    expect(script).toMatchObject({ status: 200, length: '12' });
    expect(script.body.toString()).toBe('#!ipxe\nboot\n');
    const initrd = await fetch('GET', '/sub/initrd.img');
    expect(initrd.status).toBe(200);
    expect(initrd.body.equals(Buffer.alloc(300_000, 7))).toBe(true);
    const head = await fetch('HEAD', '/sub/initrd.img');
    expect(head).toMatchObject({ status: 200, length: '300000' });
    expect(head.body.length).toBe(0);
    // the server logs a response once its own side has finished, which may come just after the client read it all
    const deadline = Date.now() + 5000;
    while (!server.requests.slice(0, 3).every((r) => r.complete) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(server.requests.slice(0, 3)).toEqual([
      { method: 'GET', path: '/boot.ipxe', status: 200, bytes: 12, complete: true },
      { method: 'GET', path: '/sub/initrd.img', status: 200, bytes: 300_000, complete: true },
      { method: 'HEAD', path: '/sub/initrd.img', status: 200, bytes: 0, complete: true },
    ]);
  });

  it('serves nothing outside the bundle, no directories, and only GET and HEAD', async () => {
    expect((await fetch('GET', '/../secret')).status).toBe(403);
    expect((await fetch('GET', '/%2e%2e/secret')).status).toBe(403);
    expect((await fetch('GET', '/sub/%2e%2e/%2e%2e/secret')).status).toBe(403);
    expect((await fetch('GET', '/missing')).status).toBe(404);
    expect((await fetch('GET', '/sub')).status).toBe(404);
    expect((await fetch('PUT', '/boot.ipxe')).status).toBe(405);
    // a symlink in the bundle that leads out of it serves nothing; one that stays inside does
    await symlink(join(tmp.dir, 'secret'), join(bundle, 'escape'));
    await symlink('sub/initrd.img', join(bundle, 'initrd-link'));
    expect((await fetch('GET', '/escape')).status).toBe(403);
    expect((await fetch('GET', '/initrd-link')).status).toBe(200);
    expect(bundleFile('/b', '/a%ZZ')).toBeUndefined();
    expect(bundleFile('/b', '/x/../y?q=1')).toBe('/b/y');
  });

  it('logs a transfer the client broke off as incomplete', async () => {
    await writeFile(join(bundle, 'big'), Buffer.alloc(64 << 20, 1));
    const before = server.requests.length;
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.port, path: '/big', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      req.end();
    });
    const deadline = Date.now() + 5000;
    while (server.requests[before]?.bytes === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // the rest of 64 MiB cannot fit in socket buffers the client never reads: it is never all sent
    const logged = server.requests[before]!;
    expect(logged).toMatchObject({ path: '/big', status: 200, complete: false });
    expect(logged.bytes).toBeLessThan(64 << 20);
  });

  it('is what QEMU\'s DHCP names as the bootfile (the host is 10.0.2.2 to the guest), instead of its TFTP server', () => {
    const args = qemuArgs({ artifact: { kind: 'pxe', dir: bundle, bootfile: 'boot.ipxe', httpPort: 8081 }, dir: '/vm', memoryMiB: 128, forwards: [], accel: 'tcg', console: 'file' });
    const netdev = args[args.indexOf('-netdev') + 1];
    expect(netdev).toBe('user,id=n0,bootfile=http://10.0.2.2:8081/boot.ipxe');
  });
});
