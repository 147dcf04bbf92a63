import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootDisk, findBootArtifact, freePort, startVm, waitForHttp } from '../../src/run/qemu.js';
import { extractOvaDisk } from '../../src/core/build/ova.js';
import { aim } from '../helpers/cli.js';
import { DATASTORE_PASSWORD, DATASTORE_USER, FakeDatastore } from '../helpers/datastore.js';
import { tempDir } from '../helpers/tmp.js';
import { prepareSlimNginx } from './helpers/slim-nginx.js';

interface Artifact {
  path: string;
  kind: string;
  bytes: number;
  sha256: string;
}
interface ErrorJson {
  error: { code: string; message: string; exitCode: number; hint?: string };
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let ds: FakeDatastore;
let origin: string;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const env = { AIM_VMWARE_USER: DATASTORE_USER, AIM_VMWARE_PASSWORD: DATASTORE_PASSWORD };

beforeAll(async () => {
  tmp = await tempDir('aim-ova-boot-');
  repo = join(tmp.dir, 'repo');
  await prepareSlimNginx(repo);
  ds = new FakeDatastore();
  origin = await ds.start();
}, 900_000);
afterAll(async () => {
  await ds?.stop();
  await tmp.cleanup();
});

const buildOva = (out: string) => aim<{ artifacts: Artifact[] }>(['build', 'slim/nginx:1', '--format', 'ova', '--kernel', 'core/kernel:bookworm', '--out', join(tmp.dir, out), '--repo', repo]);

describe('OVA of the slim nginx image', () => {
  it('is reproducible: built twice, byte-identical; descriptor, manifest, disk in that order', async () => {
    const one = await buildOva('ova');
    expect(one.exitCode, one.stderr).toBe(0);
    const two = await buildOva('ova-again');
    expect(two.exitCode, two.stderr).toBe(0);
    const [a] = one.json.artifacts;
    const [b] = two.json.artifacts;
    expect(a!.path).toMatch(/\/aim-[0-9a-f]{12}\.ova$/);
    expect(b!.sha256).toBe(a!.sha256);
    await execa('cmp', [a!.path, b!.path]);
    const names = (await execa('tar', ['-tf', a!.path])).stdout.split('\n');
    const base = a!.path.replace(/^.*\//, '').replace(/\.ova$/, '');
    expect(names).toEqual([`${base}.ovf`, `${base}.mf`, `${base}-disk1.vmdk`]);
  }, 400_000);

  it('boots its disk on VMware devices (pvscsi + vmxnet3) under OVMF, and nginx answers', async () => {
    const ova = join(tmp.dir, 'ova');
    expect(existsSync(ova), 'the OVA of the first test').toBe(true);
    // aim boot takes the OVA, extracts its VMDK and picks VMware's devices for it
    const boot = await aim<{ devices: string; artifact: { kind: string }; probe: { status: number; title?: string; seconds: number } }>(['boot', ova, '--forward', '0:80', '--probe', '/', '--timeout', '110s']);
    expect(boot.exitCode, boot.stdout + boot.stderr).toBe(0);
    expect(boot.json.artifact.kind).toBe('ova');
    expect(boot.json.devices).toBe('vmware');
    expect(boot.json.probe.status).toBe(200);
    expect(boot.json.probe.title).toBe('Welcome to nginx!');
    console.log(`ova on pvscsi + vmxnet3 (aim boot): nginx answered ${boot.json.probe.seconds.toFixed(1)} s after QEMU started`);
  }, 150_000);

  it('in that boot Linux finds its root on the pvscsi disk and its network on the vmxnet3 NIC (console)', async () => {
    const dir = join(tmp.dir, 'vm-ova');
    await mkdir(dir);
    const ova = await findBootArtifact(join(tmp.dir, 'ova'));
    expect(ova.kind).toBe('ova');
    const port = await freePort();
    const accel = process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg';
    const vm = await startVm({ artifact: await bootDisk(ova, dir), devices: 'vmware', dir, memoryMiB: 512, forwards: [{ host: port, guest: 80 }], accel, console: 'file' });
    try {
      const answer = await waitForHttp(vm, port, '/', 110_000);
      expect(answer.status).toBe(200);
      const log = await vm.console();
      expect(log).toMatch(/scsi host\d+: VMware PVSCSI storage adapter/);
      expect(log).toMatch(/EXT4-fs \(sda2\): mounted filesystem/);
      expect(log).toMatch(/vmxnet3 [0-9a-f:.]+ eth0: NIC Link is Up/);
      expect(log).toMatch(/aim: eth0 has address 10\.0\.2\.15/);
      // the firmware's virtio view of the EFI partition stays invisible to Linux (no virtio drivers)
      expect(log).not.toMatch(/virtio_blk|\bvda\b/);
    } finally {
      await vm.stop();
    }
  }, 150_000);
});

describe('aim ship vmware end to end (local datastore on 127.0.0.1)', () => {
  it('writes the VMDK and the OVA (built from that VMDK) to --out and uploads exactly those bytes', async () => {
    const out = join(tmp.dir, 'ship');
    const url = `${origin}/folder/aim/web?dcPath=ha-datacenter&dsName=datastore1`;
    const res = await aim<{ artifacts: Artifact[]; published: { kind: string; location: string; sha256: string }[] }>(
      ['ship', 'vmware', 'slim/nginx:1', '--out', out, '--datastore-url', url, '--kernel', 'core/kernel:bookworm', '--memory', '768', '--repo', repo],
      { env },
    );
    expect(res.exitCode, res.stdout + res.stderr).toBe(0);
    const vmdk = join(out, 'vmdk', 'disk.vmdk');
    const ova = join(out, 'ova', 'slim-nginx-1.ova');
    expect(res.json.artifacts.map((a) => a.path)).toEqual([vmdk, ova]);
    const vmdkBytes = await readFile(vmdk);
    const ovaBytes = await readFile(ova);
    expect(res.json.artifacts.map((a) => a.sha256)).toEqual([sha(vmdkBytes), sha(ovaBytes)]);

    const auth = `Basic ${Buffer.from(`${DATASTORE_USER}:${DATASTORE_PASSWORD}`).toString('base64')}`;
    expect(ds.seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      'HEAD /folder/aim/web/slim-nginx-1.vmdk',
      'HEAD /folder/aim/web/slim-nginx-1.ova',
      'HEAD /folder/aim/web/slim-nginx-1.vmdk',
      'HEAD /folder/aim/web/slim-nginx-1.ova',
      'PUT /folder/aim/web/slim-nginx-1.vmdk',
      'PUT /folder/aim/web/slim-nginx-1.ova',
    ]);
    for (const s of ds.seen) {
      expect(s.query).toEqual({ dcPath: 'ha-datacenter', dsName: 'datastore1' });
      expect(s.auth).toBe(auth);
    }
    const puts = ds.seen.filter((s) => s.method === 'PUT');
    expect(puts.map((s) => [s.bytes, s.sha256])).toEqual([
      [vmdkBytes.length, sha(vmdkBytes)],
      [ovaBytes.length, sha(ovaBytes)],
    ]);
    expect(res.json.published.map((p) => [p.location, p.sha256])).toEqual([
      ['[datastore1] aim/web/slim-nginx-1.vmdk', sha(vmdkBytes)],
      ['[datastore1] aim/web/slim-nginx-1.ova', sha(ovaBytes)],
    ]);

    // the OVA carries the very VMDK written next to it (the disk was built once) and the options given
    const inner = join(tmp.dir, 'inner');
    await mkdir(inner);
    expect(sha(await readFile(await extractOvaDisk(ova, inner)))).toBe(sha(vmdkBytes));
    const ovf = (await execa('tar', ['-xOf', ova, 'slim-nginx-1.ovf'])).stdout;
    expect(ovf).toContain('<rasd:VirtualQuantity>768</rasd:VirtualQuantity>');
    expect(ovf).toContain('<Name>slim-nginx-1</Name>');
  }, 400_000);

  it('a datastore failing the OVA upload (HTTP 500): exit 10, what was sent is DELETEd, --out is removed', async () => {
    const out = join(tmp.dir, 'ship-fail');
    ds.seen.length = 0;
    ds.behave = (req, res, seen) => {
      if (seen.method !== 'PUT' || !seen.path.endsWith('.ova')) return false;
      req.resume();
      req.on('end', () => res.writeHead(500, { 'Content-Length': 9 }).end('disk full'));
      return true;
    };
    const url = `${origin}/folder/aim/fail?dcPath=ha-datacenter&dsName=datastore1`;
    const res = await aim<ErrorJson>(['ship', 'vmware', 'slim/nginx:1', '--out', out, '--datastore-url', url, '--kernel', 'core/kernel:bookworm', '--repo', repo], { env });
    ds.behave = () => false;
    expect(res.exitCode, res.stderr).toBe(10);
    expect(res.json.error.code).toBe('E_DATASTORE_HTTP');
    expect(res.json.error.message).toMatch(/PUT \/folder\/aim\/fail\/slim-nginx-1\.ova failed: HTTP 500 \(disk full\)/);
    const methods = ds.seen.filter((s) => s.method !== 'HEAD').map((s) => `${s.method} ${s.path}`);
    expect(methods).toEqual(['PUT /folder/aim/fail/slim-nginx-1.vmdk', 'PUT /folder/aim/fail/slim-nginx-1.ova', 'DELETE /folder/aim/fail/slim-nginx-1.ova', 'DELETE /folder/aim/fail/slim-nginx-1.vmdk']);
    expect([...ds.stored.keys()].filter((k) => k.startsWith('/folder/aim/fail/'))).toEqual([]);
    expect(existsSync(out)).toBe(false);
  }, 400_000);
});
