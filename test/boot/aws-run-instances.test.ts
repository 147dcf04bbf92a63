import {
  DescribeInstancesCommand,
  GetConsoleOutputCommand,
  ImportKeyPairCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  waitUntilImageAvailable,
  type EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import type { EBSClient } from '@aws-sdk/client-ebs';
import { chmod, copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from '../../src/run/qemu.js';
import { startAwsFake, type AwsFake } from '../helpers/aws/aws-fake.js';
import { fakeClients } from '../helpers/aws/clients.js';
import { GUEST_IP } from '../helpers/aws/instance-vm.js';
import { until, uploadDisk } from '../helpers/aws/sdk-steps.js';
import { aim } from '../helpers/cli.js';
import { kernelDebDir } from '../helpers/kernel.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * The fake EC2's RunInstances boots for real: a tiny image aim builds for the ec2 platform (busybox
 * httpd; virtio_net added, QEMU has no ENA) goes up block by block through EBS PutSnapshotBlock, is
 * registered as a UEFI AMI, and the instance's QEMU boots the volume assembled from the snapshot
 * on NVMe. The guest asks IMDSv2 for its SSH key (token PUT, then GET) at 169.254.169.254 and
 * serves what it got; the test reaches it through the forwarded port.
 */

let tmp: Awaited<ReturnType<typeof tempDir>>;
let disk: string;
let fake: AwsFake;
let ec2: EC2Client;
let ebs: EBSClient;

// an ed25519 public key in OpenSSH's wire format (only its shape matters to EC2 and IMDS)
const keyBlob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7)]);
const PUBLIC_KEY = `ssh-ed25519 ${keyBlob.toString('base64')} someone@laptop`;

const START = `#!/bin/busybox sh
# IMDSv2 from the guest: a session token by PUT, then metadata with the token
B=/bin/busybox
$B mkdir -p /tmp/www
$B cp /www/index.html /tmp/www/
for i in $($B seq 1 60); do
  TOKEN=$(printf 'PUT /latest/api/token HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 300\\r\\n\\r\\n' | $B nc 169.254.169.254 80 | $B tail -n 1)
  if [ -n "$TOKEN" ] && $B wget -q -O /tmp/www/openssh-key --header "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/public-keys/0/openssh-key; then
    $B wget -q -O /tmp/www/instance-id --header "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id
    break
  fi
  $B sleep 1
done
exec $B httpd -f -p 80 -h /tmp/www
`;

beforeAll(async () => {
  tmp = await tempDir('aim-fake-run-');
  const root = join(tmp.dir, 'root');
  for (const d of ['bin', 'srv', 'www']) await mkdir(join(root, d), { recursive: true });
  await copyFile('/usr/bin/busybox', join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  await writeFile(join(root, 'www', 'index.html'), '<html>tiny web on a fake EC2</html>\n');
  await writeFile(join(root, 'srv', 'start.sh'), START, { mode: 0o755 });
  const repo = join(tmp.dir, 'repo');
  const run = async (...args: string[]) => {
    const r = await aim([...args, '--repo', repo]);
    expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  await run('repo', 'init');
  await run('image', 'import', root, '--tag', 'tiny/web:1');
  await run('core', 'kernel', '--deb-dir', kernelDebDir);
  const out = join(tmp.dir, 'out');
  const built = await run('build', 'tiny/web:1', '--format', 'raw', '--platform', 'ec2', '--module', 'virtio_pci', '--module', 'virtio_net', '--kernel', 'core/kernel:bookworm', '--entrypoint', '/srv/start.sh', '--headroom', '8', '--out', out);
  disk = (built.json as { artifacts: { path: string }[] }).artifacts[0]!.path;
  fake = await startAwsFake({ instances: { forwardPorts: [80], maxSeconds: 240 } });
  ({ ec2, ebs } = fakeClients(fake, 'eu-west-1'));
}, 900_000);
afterAll(async () => {
  await fake?.stop();
  await tmp?.cleanup();
});

const describeInstance = async (id: string): Promise<Instance> => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations![0]!.Instances![0]!;

describe('RunInstances boots the registered AMI in QEMU', () => {
  it('EBS upload → RegisterImage (UEFI) → RunInstances: the guest answers through its forwarded port and got its key from IMDSv2', async () => {
    const uploaded = await uploadDisk(ebs, ec2, disk);
    const sent = fake.traffic().ebs.actions.PutSnapshotBlock!;
    expect(sent.requests).toBe(uploaded.blocks);
    console.log(`fake EC2 boot: ${uploaded.blocks} blocks (${(sent.bodyBytes / 1048576).toFixed(1)} MiB) of a ${((await stat(disk)).size / 1048576).toFixed(0)} MiB disk sent through PutSnapshotBlock`);
    await ec2.send(new ImportKeyPairCommand({ KeyName: 'aim-test-key', PublicKeyMaterial: Buffer.from(PUBLIC_KEY) }));
    const { ImageId } = await ec2.send(
      new RegisterImageCommand({
        Name: 'tiny web (aim)',
        Architecture: 'x86_64',
        BootMode: 'uefi',
        EnaSupport: true,
        ImdsSupport: 'v2.0',
        VirtualizationType: 'hvm',
        RootDeviceName: '/dev/xvda',
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: uploaded.snapshotId, DeleteOnTermination: true } }],
      }),
    );
    await waitUntilImageAvailable({ client: ec2, maxWaitTime: 30, minDelay: 1 }, { ImageIds: [ImageId!] });
    const reservation = await ec2.send(new RunInstancesCommand({ ImageId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, KeyName: 'aim-test-key' }));
    const id = reservation.Instances![0]!.InstanceId!;
    let qemu: { exited(): boolean } | undefined;
    expect(reservation.Instances![0]!.State).toEqual({ Code: 0, Name: 'pending' });
    try {
      const running = await until('the instance leaves pending', async () => {
        const i = await describeInstance(id);
        return i.State!.Name === 'pending' ? undefined : i;
      }, 60_000, 200);
      expect(running.State, JSON.stringify(running.StateReason)).toEqual({ Code: 16, Name: 'running' });
      expect(running).toMatchObject({ ImageId, InstanceType: 't3.micro', KeyName: 'aim-test-key', BootMode: 'uefi', CurrentInstanceBootMode: 'uefi', PrivateIpAddress: GUEST_IP, MetadataOptions: { HttpTokens: 'required' } });
      const port = fake.state.instances.get(id)!.forwards.find((f) => f.guest === 80)!.host;
      const get = (path: string) => until(`GET ${path} from the guest`, async () => {
        const a = await httpGet(port, path).catch(() => undefined);
        return a?.status === 200 ? a.body.toString('utf8') : undefined;
      }, 150_000, 1000);
      expect(await get('/')).toBe('<html>tiny web on a fake EC2</html>\n');
      expect(await get('/instance-id')).toBe(id);
      expect(await get('/openssh-key')).toBe(`ssh-ed25519 ${keyBlob.toString('base64')} aim-test-key\n`);
      // the guest took a token first and every metadata GET carried it
      const imds = fake.fleet.vms.get(id)!.imds.requests;
      const firstPut = imds.findIndex((r) => r.method === 'PUT' && r.path === '/latest/api/token' && r.status === 200);
      const keyGet = imds.findIndex((r) => r.path === '/latest/meta-data/public-keys/0/openssh-key' && r.status === 200);
      expect(firstPut).toBeGreaterThanOrEqual(0);
      expect(keyGet).toBeGreaterThan(firstPut);
      expect(imds[keyGet]!.token).toBe(true);
      qemu = fake.fleet.vms.get(id)!.vm;
      const console_ = Buffer.from((await ec2.send(new GetConsoleOutputCommand({ InstanceId: id }))).Output ?? '', 'base64').toString('utf8');
      expect(console_).toMatch(/nvme nvme0/);
      expect(console_).toContain(`aim: eth0 has address ${GUEST_IP}`);
    } finally {
      const t = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      expect(t.TerminatingInstances![0]!.CurrentState!.Name).toBe('shutting-down');
    }
    const gone = await until('the instance terminates', async () => {
      const i = await describeInstance(id);
      return i.State!.Name === 'terminated' ? i : undefined;
    }, 30_000, 200);
    expect(gone.StateReason?.Code).toBe('Client.UserInitiatedShutdown');
    expect(fake.fleet.vms.has(id)).toBe(false);
    expect(qemu?.exited()).toBe(true);
  }, 300_000);
});
