import {
  CancelImportTaskCommand,
  DescribeInstancesCommand,
  GetConsoleOutputCommand,
  ImportKeyPairCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mapDisk, type BlockMap } from '../../providers/aws/disk-blocks.js';
import { TAG } from '../../providers/aws/names.js';
import { httpGet } from '../../src/run/qemu.js';
import { startAwsFake, type AwsFake } from '../helpers/aws/aws-fake.js';
import { fakeClients } from '../helpers/aws/clients.js';
import { assembleVolume } from '../helpers/aws/disk-assembly.js';
import { GUEST_IP } from '../helpers/aws/instance-vm.js';
import { until } from '../helpers/aws/sdk-steps.js';
import { aim, runJs } from '../helpers/cli.js';
import { goldRecipe, templatePath } from '../helpers/examples.js';
import { layeredGoldTar } from '../helpers/gold.js';
import { kernelDebDir } from '../helpers/kernel.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * `aim ship aws` end to end against the fake AWS (EC2 Query and EBS direct servers, s3rver), with
 * the slim nginx image of examples/aws-nginx made once: both paths, the AMI booted by RunInstances
 * in QEMU and nginx reached through the forwarded port, re-ship and update, faults retried, kill -9
 * and resume, a failed import cleaned up, two runs at once, bad input refused before any upload,
 * list and rm, and no credential in any output.
 */

const REGION = 'eu-west-1';
const EXAMPLE = 'aws-nginx';
const TEMPLATE = templatePath(EXAMPLE);
// QEMU emulates no ENA: the disk the fake boots also carries virtio's NIC driver
const QEMU_NIC = ['--module', 'virtio_pci', '--module', 'virtio_net'];

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let fake: AwsFake;
let ec2: EC2Client;
let env: Record<string, string>;
/** env without the per-service endpoints: the ship names the fake's one endpoint with --endpoint-url. */
let oneEndpointEnv: Record<string, string>;
let outs = 0;
/** The block map of the first ship's disk (the layout every build of slim/aws-nginx:1 shares). */
let firstBlocks: BlockMap;

interface Published {
  kind: string;
  id: string;
  location: string;
}
interface ShipJson {
  publication: { id: string; state: string; outDir?: string; resources: { kind: string; id: string; state: string; location?: string; data: Record<string, unknown> }[] };
  alreadyPublished: boolean;
  buildsRemoved: boolean;
  resumed: boolean;
  waited: boolean;
  artifacts: { path: string }[];
  published: Published[];
  plan: { steps: { action: string }[]; parent?: { snapshotId: string } };
}
interface ErrorJson {
  error: { code: string; message: string; hint?: string; exitCode: number };
}

// credentials planted where they must never show (in no output, error or DEBUG line)
const SECRET = 'aimSecretMarker0123456789abcdefghijklmnop';
const TOKEN = 'aimTokenMarker9876543210zyxwvutsrqponmlkji';
const FILE_SECRET = 'aimFileSecretMarker5555555555aaaaaaaaaaaa';
const MARKERS = [SECRET, TOKEN, FILE_SECRET, 'AKIAPLANTEDMARKER000'];
/** env with the planted secret key and session token, and every DEBUG line on (the fake EC2 and EBS take any well-formed signature). */
const plantedEnv = () => ({ ...env, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: TOKEN, DEBUG: 'aim:*' });
const expectNoSecrets = (outputs: string[]) => {
  for (const text of outputs) for (const marker of MARKERS) expect(text).not.toContain(marker);
  expect(outputs.join('\n')).toMatch(/aim:/);
};

const newOut = () => join(tmp.dir, `out-${++outs}`);
const ship = <T = ShipJson>(image: string, args: string[], extraEnv: Record<string, string> = {}) =>
  aim<T>(['ship', 'aws', image, '--repo', repo, '--out', newOut(), '--kernel', 'core/kernel:bookworm', ...args], { env: { ...env, ...extraEnv } });
const run = async (...args: string[]) => {
  const r = await aim([...args, '--repo', repo], { env });
  expect(r.exitCode, `aim ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r;
};

const amisNamed = (prefix: string) => [...fake.state.images.values()].filter((i) => i.name.startsWith(prefix));
/** The snapshots of a lineage (aim:name) the account holds: a fault, kill or retry must leave no second one. */
const snapshotsNamed = (lineage: string) => [...fake.state.snapshots.values()].filter((x) => x.tags.get(TAG.name) === lineage);

/** The volume EC2 would make from the snapshot holds exactly the disk. */
async function expectSnapshotIsDisk(snapshotId: string, disk: string) {
  const snapshot = fake.state.snapshots.get(snapshotId)!;
  const volume = join(tmp.dir, `${snapshotId}.vol`);
  await assembleVolume(fake.state, snapshot, snapshot.volumeSize, volume);
  const size = (await import('node:fs/promises')).stat(disk).then((s) => s.size);
  await execa('cmp', ['-n', String(await size), disk, volume]);
  await (await import('node:fs/promises')).rm(volume);
}

beforeAll(async () => {
  tmp = await tempDir('aim-ship-aws-');
  repo = join(tmp.dir, 'repo');
  const recipe = await goldRecipe(EXAMPLE);
  await run('repo', 'init');
  await run('image', 'import', await layeredGoldTar(recipe.packages, recipe.copyIns), '--tag', recipe.tag);
  await run('profile', 'run', '--template', TEMPLATE);
  await run('slim', '--template', TEMPLATE);
  // version 2 of the same image name: one more file kept
  await run('slim', 'gold/aws-nginx:1', '--profile', 'aws-nginx', '--keep', '/etc/nginx/koi-utf', '--tag', 'slim/aws-nginx:2');
  await run('core', 'kernel', '--deb-dir', kernelDebDir);
  fake = await startAwsFake({ buckets: ['aim-images'], importStepMs: 100, sealDelayMs: 50, registerDelayMs: 50, copyDelayMs: 100, instances: { forwardPorts: [80], maxSeconds: 300 } });
  ({ ec2 } = fakeClients(fake, REGION));
  env = {
    AWS_ACCESS_KEY_ID: fake.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: fake.credentials.secretAccessKey,
    AWS_REGION: REGION,
    AWS_ENDPOINT_URL_EC2: fake.endpoints.ec2,
    AWS_ENDPOINT_URL_EBS: fake.endpoints.ebs,
    AWS_ENDPOINT_URL_S3: fake.endpoints.s3,
    AWS_CONFIG_FILE: join(tmp.dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(tmp.dir, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  oneEndpointEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('AWS_ENDPOINT_URL')));
}, 900_000);
afterAll(async () => {
  ec2?.destroy();
  await fake?.stop();
  await tmp?.cleanup();
});
beforeEach(() => {
  fake?.ebs.faults.clear();
  fake?.ec2.faults.clear();
  fake?.resetTraffic();
});

describe('EBS direct path', () => {
  let first: ShipJson;
  let firstDisk: { path: string; blocks: BlockMap };

  it('ships the slim image: only blocks holding data go up, and the AMI is UEFI, ENA, IMDSv2 with aim’s tags', async () => {
    const from = fake.ebs.calls.length;
    const r = await ship('slim/aws-nginx:1', ['--template', TEMPLATE, ...QEMU_NIC]);
    expect(r.exitCode, r.stderr).toBe(0);
    first = r.json;
    const [ami] = first.published;
    expect(ami).toMatchObject({ kind: 'ami', location: REGION });
    const disk = first.artifacts.find((a) => a.path.endsWith('disk.raw'))!.path;
    firstDisk = { path: disk, blocks: (await mapDisk(disk)).blocks };
    firstBlocks = firstDisk.blocks;
    // exactly the disk's non-zero 512 KiB blocks were sent, each once
    const puts = fake.ebs.calls.slice(from).filter((c) => c.action === 'PutSnapshotBlock' && !c.error).map((c) => c.blockIndex!);
    expect(puts.sort((a, b) => a - b)).toEqual([...firstDisk.blocks.keys()].sort((a, b) => a - b));
    const image = fake.state.images.get(ami!.id)!;
    expect(image).toMatchObject({ name: `aws-nginx-${(await imageId('slim/aws-nginx:1')).slice(0, 12)}`, architecture: 'x86_64', bootMode: 'uefi', enaSupport: true, imdsSupport: 'v2.0', virtualizationType: 'hvm', rootDeviceName: '/dev/xvda' });
    const snapshotId = image.blockDeviceMappings[0]!.Ebs!.SnapshotId!;
    for (const tags of [image.tags, fake.state.snapshots.get(snapshotId)!.tags]) {
      expect(Object.fromEntries(tags)).toMatchObject({ [TAG.imageId]: await imageId('slim/aws-nginx:1'), [TAG.name]: 'aws-nginx', [TAG.publication]: first.publication.id, project: 'aim-example' });
    }
    await expectSnapshotIsDisk(snapshotId, disk);
    expect(first.publication.resources.map((x) => `${x.kind} ${x.state}`)).toEqual(['build created', 'snapshot created', 'ami created']);
  }, 300_000);

  it('the AMI boots: RunInstances in QEMU (OVMF, NVMe), nginx answers through the forwarded port, the key pair’s key comes from IMDSv2; terminated, QEMU is gone', async () => {
    // the one QEMU boot of the fake AWS's tests: it covers RunInstances' instance life cycle too
    const amiId = first.published[0]!.id;
    const keyBlob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 9)]).toString('base64');
    await ec2.send(new ImportKeyPairCommand({ KeyName: 'aim-test', PublicKeyMaterial: Buffer.from(`ssh-ed25519 ${keyBlob} me@laptop`) }));
    const reservation = await ec2.send(new RunInstancesCommand({ ImageId: amiId, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, KeyName: 'aim-test' }));
    const id = reservation.Instances![0]!.InstanceId!;
    expect(reservation.Instances![0]!.State).toEqual({ Code: 0, Name: 'pending' });
    const describe = async () => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations![0]!.Instances![0]!;
    let qemu: { exited(): boolean } | undefined;
    try {
      const running = await until('the instance leaves pending', async () => {
        const i = await describe();
        return i.State!.Name === 'pending' ? undefined : i;
      }, 120_000, 250);
      expect(running.State, JSON.stringify(running.StateReason)).toEqual({ Code: 16, Name: 'running' });
      expect(running).toMatchObject({ ImageId: amiId, InstanceType: 't3.micro', KeyName: 'aim-test', BootMode: 'uefi', CurrentInstanceBootMode: 'uefi', PrivateIpAddress: GUEST_IP, MetadataOptions: { HttpTokens: 'required' } });
      qemu = fake.fleet.vms.get(id)!.vm;
      const port = fake.state.instances.get(id)!.forwards.find((f) => f.guest === 80)!.host;
      const page = await until('nginx answers', async () => {
        const a = await httpGet(port, '/').catch(() => undefined);
        return a?.status === 200 ? a.body.toString('utf8') : undefined;
      }, 200_000, 1000);
      expect(page).toContain('Served from an AMI aim made');
      const consoleText = async () => Buffer.from((await ec2.send(new GetConsoleOutputCommand({ InstanceId: id }))).Output ?? '', 'base64').toString('utf8');
      const withKey = await until('aim’s init takes the key from IMDSv2', async () => {
        const text = await consoleText();
        return text.includes('aim: ssh key from instance metadata') ? text : undefined;
      }, 60_000, 1000);
      expect(withKey).toMatch(/nvme nvme0/);
      expect(withKey).toContain(`aim: eth0 has address ${GUEST_IP}`);
      expect(withKey).toContain(`aim: ssh key from instance metadata (IMDSv2) in /root/.ssh/authorized_keys: ssh-ed25519 ${keyBlob} aim-test`);
      const imds = fake.fleet.vms.get(id)!.imds.requests;
      const put = imds.findIndex((q) => q.method === 'PUT' && q.path === '/latest/api/token' && q.status === 200);
      const key = imds.findIndex((q) => q.path === '/latest/meta-data/public-keys/0/openssh-key' && q.status === 200);
      expect(put).toBeGreaterThanOrEqual(0);
      expect(key).toBeGreaterThan(put);
      expect(imds[key]!.token).toBe(true);
    } finally {
      const t = await ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      expect(t.TerminatingInstances![0]!.CurrentState!.Name).toBe('shutting-down');
    }
    const gone = await until('the instance terminates', async () => {
      const i = await describe();
      return i.State!.Name === 'terminated' ? i : undefined;
    }, 60_000, 250);
    expect(gone.StateReason?.Code).toBe('Client.UserInitiatedShutdown');
    expect(fake.fleet.vms.has(id)).toBe(false);
    expect(qemu?.exited()).toBe(true);
  }, 420_000);

  it('a re-ship of the same image sends nothing and names the same AMI; with a tag more, it tags what exists', async () => {
    const r = await ship('slim/aws-nginx:1', ['--template', TEMPLATE, ...QEMU_NIC]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json.alreadyPublished).toBe(true);
    expect(r.json.published.map((p) => p.id)).toEqual(first.published.map((p) => p.id));
    expect(fake.traffic().ebs.requests).toBe(0);
    expect(fake.traffic().ec2.actions.RegisterImage).toBeUndefined();
    expect(amisNamed('aws-nginx-')).toHaveLength(1);
    // a tag given later is added to the AMI and its snapshot: still nothing uploaded or registered
    const tagged = await ship('slim/aws-nginx:1', ['--template', TEMPLATE, ...QEMU_NIC, '--tag', 'team=web']);
    expect(tagged.exitCode, tagged.stderr).toBe(0);
    expect(tagged.json.published.map((p) => p.id)).toEqual(first.published.map((p) => p.id));
    expect(fake.traffic().ebs.requests).toBe(0);
    expect(fake.traffic().ec2.actions.RegisterImage).toBeUndefined();
    const image = fake.state.images.get(first.published[0]!.id)!;
    for (const tags of [image.tags, fake.state.snapshots.get(image.blockDeviceMappings[0]!.Ebs!.SnapshotId!)!.tags]) expect(Object.fromEntries(tags)).toMatchObject({ team: 'web', project: 'aim-example' });
  }, 120_000);

  it('a new version of the image sends only the blocks that differ from its parent', async () => {
    const from = fake.ebs.calls.length;
    const r = await ship('slim/aws-nginx:2', ['--template', TEMPLATE, ...QEMU_NIC]);
    expect(r.exitCode, r.stderr).toBe(0);
    const parentSnapshot = fake.state.images.get(first.published[0]!.id)!.blockDeviceMappings[0]!.Ebs!.SnapshotId!;
    expect(r.json.plan.parent?.snapshotId).toBe(parentSnapshot);
    const disk = r.json.artifacts.find((a) => a.path.endsWith('disk.raw'))!.path;
    const now = (await mapDisk(disk)).blocks;
    const differ = [...new Set([...now.keys(), ...firstDisk.blocks.keys()])].filter((i) => !now.get(i)?.equals(firstDisk.blocks.get(i) ?? Buffer.alloc(0))).sort((a, b) => a - b);
    const puts = fake.ebs.calls.slice(from).filter((c) => c.action === 'PutSnapshotBlock' && !c.error).map((c) => c.blockIndex!);
    expect(puts.sort((a, b) => a - b)).toEqual(differ);
    expect(differ.length).toBeLessThan(now.size);
    const image = fake.state.images.get(r.json.published[0]!.id)!;
    const snapshot = fake.state.snapshots.get(image.blockDeviceMappings[0]!.Ebs!.SnapshotId!)!;
    expect(snapshot.parentId).toBe(parentSnapshot);
    await expectSnapshotIsDisk(snapshot.id, disk);
    console.log(`update: ${differ.length} of ${now.size} blocks sent (${((100 * differ.length) / firstDisk.blocks.size).toFixed(1)}% of the first ship's ${firstDisk.blocks.size})`);
  }, 300_000);
});

async function imageId(ref: string): Promise<string> {
  const r = await aim<{ id: string }>(['image', 'inspect', ref, '--repo', repo]);
  return r.json.id;
}

describe('faults and idempotency', () => {
  it('throttling and 5xx on every step are retried: one AMI, every block in; the planted secret shows in none of its DEBUG lines', async () => {
    for (const action of ['DescribeImages', 'RegisterImage', 'DescribeSnapshots']) fake.ec2.faults.add({ action, times: 2, effect: { kind: 'throttle' } });
    fake.ec2.faults.add({ action: 'RegisterImage', effect: { kind: 'server-error', status: 503 } });
    fake.ebs.faults.add({ action: 'StartSnapshot', times: 2, effect: { kind: 'server-error' } });
    // one block per kind of fault (a request takes a hit from every rule it matches)
    const [a, b, c] = [...firstBlocks.keys()];
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: a, times: 6, effect: { kind: 'throttle' } });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: b, times: 3, effect: { kind: 'server-error', status: 503 } });
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', blockIndex: c, times: 2, effect: { kind: 'drop', when: 'after' } });
    fake.ebs.faults.add({ action: 'CompleteSnapshot', effect: { kind: 'throttle' } });
    const from = fake.ebs.calls.length;
    const r = await ship('slim/aws-nginx:1', ['--name', 'faulty'], plantedEnv());
    expect(r.exitCode, r.stderr).toBe(0);
    expectNoSecrets([r.stdout, r.stderr]);
    const calls = fake.ebs.calls.slice(from);
    expect(calls.filter((c) => c.error).length).toBe(2 + 6 + 3 + 2 + 1);
    expect(fake.ec2.calls.filter((c) => c.error === 'RequestLimitExceeded' || c.error === 'Unavailable').length).toBeGreaterThanOrEqual(3);
    expect(amisNamed('faulty-')).toHaveLength(1);
    const image = fake.state.images.get(r.json.published[0]!.id)!;
    expect(snapshotsNamed('faulty').map((x) => x.id)).toEqual([image.blockDeviceMappings[0]!.Ebs!.SnapshotId]);
    await expectSnapshotIsDisk(image.blockDeviceMappings[0]!.Ebs!.SnapshotId!, r.json.artifacts[0]!.path);
  }, 300_000);

  it('two runs of one ship at once (no --out), and one after the other, give one AMI; no build is left in aim’s scratch space', async () => {
    const args = ['ship', 'aws', 'slim/aws-nginx:1', '--repo', repo, '--kernel', 'core/kernel:bookworm', '--name', 'twice', '--json'];
    const [a, b] = await Promise.all([execa(process.execPath, [runJs, ...args], { env: { ...process.env, ...env }, reject: false }), execa(process.execPath, [runJs, ...args], { env: { ...process.env, ...env }, reject: false })]);
    expect(a.exitCode, a.stderr).toBe(0);
    expect(b.exitCode, b.stderr).toBe(0);
    const [ja, jb] = [JSON.parse(a.stdout) as ShipJson, JSON.parse(b.stdout) as ShipJson];
    expect(ja.published[0]!.id).toBe(jb.published[0]!.id);
    expect(ja.publication.id).toBe(jb.publication.id);
    // the second waited for the first and found its AMI
    expect([ja, jb].filter((j) => j.waited || j.alreadyPublished)).toHaveLength(1);
    // the disk was built in aim's scratch space and removed once the AMI was registered
    const shipped = [ja, jb].find((j) => !j.alreadyPublished)!;
    expect(shipped.buildsRemoved).toBe(true);
    expect(shipped.publication.resources.map((x) => `${x.kind} ${x.state}`)).toEqual(['build removed', 'snapshot created', 'ami created']);
    expect(existsSync(join(repo, 'ship-builds', shipped.publication.id))).toBe(false);
    const again = await ship('slim/aws-nginx:1', ['--name', 'twice']);
    expect(again.json.alreadyPublished).toBe(true);
    expect(amisNamed('twice-')).toHaveLength(1);
    expect(snapshotsNamed('twice')).toHaveLength(1);
    expect(fake.traffic().ec2.actions.RegisterImage?.requests).toBe(1);
  }, 300_000);

  it('kill -9 in the middle of the block upload (no --out): aim ship resume sends only the blocks the journal lacks, from the scratch build, then removes it', async () => {
    // slow blocks, two at a time, so the kill lands mid-upload
    fake.ebs.faults.add({ action: 'PutSnapshotBlock', times: Infinity, effect: { kind: 'delay', ms: 400 } });
    const child = execa(process.execPath, [runJs, 'ship', 'aws', 'slim/aws-nginx:1', '--repo', repo, '--kernel', 'core/kernel:bookworm', '--name', 'killed', '--parallel', '2', '--json'], { env: { ...process.env, ...env }, reject: false });
    const before = fake.ebs.calls.length;
    await until('some blocks are in', async () => (fake.ebs.calls.slice(before).filter((c) => c.action === 'PutSnapshotBlock' && !c.error).length >= 8 ? true : undefined), 240_000, 100);
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');
    fake.ebs.faults.clear();
    const listed = await aim<{ publications: ShipJson['publication'][] }>(['ship', 'list', '--repo', repo], { env });
    const cut = listed.json.publications.find((p) => p.resources.some((r) => r.kind === 'snapshot' && r.state === 'created' && !(r.data as { completed?: boolean }).completed))!;
    expect(cut.state).toBe('interrupted');
    const snapshot = cut.resources.find((r) => r.kind === 'snapshot')!;
    const done = new Set<number>();
    for (const [a, b] of (snapshot.data.done as [number, number][]) ?? []) for (let i = a; i <= b; i++) done.add(i);
    expect(done.size).toBeGreaterThan(0);
    const writes = snapshot.data.writes as number;
    expect(done.size).toBeLessThan(writes);
    // the disk is in aim's scratch space, kept for the resume; a copy to compare the snapshot with
    const scratch = join(repo, 'ship-builds', cut.id);
    expect(cut.outDir).toBe(scratch);
    const disk = join(tmp.dir, 'killed.raw');
    await execa('cp', ['--sparse=always', join(scratch, 'raw', 'disk.raw'), disk]);
    fake.resetTraffic();
    const from = fake.ebs.calls.length;
    const resumed = await aim<ShipJson>(['ship', 'resume', cut.id, '--repo', repo], { env });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.json.resumed).toBe(true);
    const sent = fake.ebs.calls.slice(from).filter((c) => c.action === 'PutSnapshotBlock' && !c.error).map((c) => c.blockIndex!);
    expect(sent.length).toBe(writes - done.size);
    expect(sent.filter((i) => done.has(i))).toEqual([]);
    expect(fake.traffic().ebs.actions.StartSnapshot?.requests ?? 0).toBe(0);
    expect(amisNamed('killed-')).toHaveLength(1);
    expect(snapshotsNamed('killed').map((x) => x.id)).toEqual([snapshot.id]);
    expect(resumed.json.buildsRemoved).toBe(true);
    expect(resumed.json.publication.resources.map((x) => `${x.kind} ${x.state}`)).toEqual(['build removed', 'snapshot created', 'ami created']);
    expect(existsSync(scratch)).toBe(false);
    await expectSnapshotIsDisk(snapshot.id, disk);
    await (await import('node:fs/promises')).rm(disk);
  }, 400_000);
});

describe('import-snapshot path', () => {
  it('the stream-optimized VMDK goes through S3 and ImportSnapshot (one --endpoint-url for EC2 and S3); killed -9 while the import runs, aim ship resume follows the same task; the AMI registers; no S3 object, upload or second snapshot is left', async () => {
    // the first poll of the import task is held, so the kill lands after the task was started and journalled
    const held = fake.ec2.faults.add({ action: 'DescribeImportSnapshotTasks', effect: { kind: 'delay', ms: 30_000 } });
    const child = execa(process.execPath, [runJs, 'ship', 'aws', 'slim/aws-nginx:1', '--repo', repo, '--out', newOut(), '--kernel', 'core/kernel:bookworm', '--name', 'imported', '--via', 'import-snapshot', '--bucket', 'aim-images', '--endpoint-url', fake.endpoint, '--json'], { env: { ...process.env, ...oneEndpointEnv }, reject: false });
    await until('aim polls the import task', async () => (held.hits > 0 || child.exitCode !== null ? true : undefined), 240_000, 100);
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');
    const listed = await aim<{ publications: ShipJson['publication'][] }>(['ship', 'list', '--repo', repo], { env: oneEndpointEnv });
    const cut = listed.json.publications.find((p) => p.state === 'interrupted' && p.resources.some((x) => x.kind === 'import task'))!;
    expect(cut.resources.map((x) => `${x.kind} ${x.state}`)).toEqual(['build created', 's3 object created', 'import task created']);
    fake.resetTraffic();
    const r = await aim<ShipJson>(['ship', 'resume', cut.id, '--repo', repo], { env: oneEndpointEnv });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.json.resumed).toBe(true);
    const tasks = [...fake.state.importTasks.values()].filter((t) => t.tags.get(TAG.publication) === cut.id);
    expect(tasks).toHaveLength(1);
    const task = tasks[0]!;
    expect(task).toMatchObject({ status: 'completed', format: 'VMDK', roleName: 'vmimport', bucket: 'aim-images' });
    // the resume sent no disk again and started no second import
    expect(fake.traffic().s3.actions.UploadPart).toBeUndefined();
    expect(fake.traffic().ec2.actions.ImportSnapshot).toBeUndefined();
    const s3 = fakeClients(fake, REGION).s3;
    await expect(s3.send(new HeadObjectCommand({ Bucket: 'aim-images', Key: task.key }))).rejects.toMatchObject({ name: 'NotFound' });
    s3.destroy();
    const uploads = join(fake.s3Directory, 'aim-images', '._S3rver_uploads');
    expect(existsSync(uploads) ? await readdir(uploads) : []).toEqual([]);
    const image = fake.state.images.get(r.json.published[0]!.id)!;
    expect(image.blockDeviceMappings[0]!.Ebs!.SnapshotId).toBe(task.snapshotId);
    expect(snapshotsNamed('imported').map((x) => x.id)).toEqual([task.snapshotId]);
    expect(amisNamed('imported-')).toHaveLength(1);
    expect(Object.fromEntries(fake.state.snapshots.get(task.snapshotId!)!.tags)).toMatchObject({ [TAG.name]: 'imported', [TAG.publication]: cut.id });
    expect(r.json.publication.resources.map((x) => `${x.kind} ${x.state}`)).toEqual(['build created', 's3 object removed', 'import task created', 'snapshot created', 'ami created']);
    // the snapshot holds the raw disk the VMDK was made from
    const raw = join(tmp.dir, 'imported.raw');
    await execa('qemu-img', ['convert', '-f', 'vmdk', '-O', 'raw', r.json.artifacts[0]!.path, raw]);
    await expectSnapshotIsDisk(task.snapshotId!, raw);
  }, 300_000);

  it('an import AWS gives up on is an error with its reason, and what the journal holds is removed', async () => {
    const cancelled = (async () => {
      const task = await until('the import task exists', async () => [...fake.state.importTasks.values()].find((t) => t.tags.get(TAG.name) === 'doomed' && t.status === 'active'), 240_000, 100);
      await ec2.send(new CancelImportTaskCommand({ ImportTaskId: task.id, CancelReason: 'test' }));
      return task;
    })();
    const r = await ship<ErrorJson>('slim/aws-nginx:1', ['--name', 'doomed', '--via', 'import-snapshot', '--bucket', 'aim-images']);
    const task = await cancelled;
    expect(r.exitCode).toBe(10);
    expect(r.json.error.code).toBe('E_AWS_IMPORT_FAILED');
    expect(r.json.error.message).toMatch(/User cancelled/);
    const s3 = fakeClients(fake, REGION).s3;
    await expect(s3.send(new HeadObjectCommand({ Bucket: 'aim-images', Key: task.key }))).rejects.toMatchObject({ name: 'NotFound' });
    s3.destroy();
    // no multipart upload left behind in s3rver either
    const uploads = join(fake.s3Directory, 'aim-images', '._S3rver_uploads');
    expect(existsSync(uploads) ? await readdir(uploads) : []).toEqual([]);
    expect(amisNamed('doomed-')).toHaveLength(0);
    expect(snapshotsNamed('doomed')).toEqual([]);
    const listed = await aim<{ publications: ShipJson['publication'][] }>(['ship', 'list', '--repo', repo, '--all', '--state', 'failed'], { env });
    const p = listed.json.publications.find((x) => x.resources.some((res) => res.kind === 's3 object' && res.id === task.key))!;
    expect(p.resources.every((res) => res.state === 'removed')).toBe(true);
  }, 300_000);
});

describe('bad input is refused before any upload', () => {
  it('an unknown region, a malformed tag, legacy-bios, an image without a kernel, credentials without the rights', async () => {
    const unknown = await ship<ErrorJson>('slim/aws-nginx:1', ['--region', 'xx-nowhere-1']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.json.error).toMatchObject({ code: 'E_AWS_REGION', message: 'unknown AWS region: xx-nowhere-1' });
    const tag = await ship<ErrorJson>('slim/aws-nginx:1', ['--tag', 'no-value', '--tag', 'aws:reserved=1']);
    expect(tag.exitCode).toBe(2);
    expect(tag.json.error.message).toMatch(/"no-value" is not KEY=VALUE.*keys beginning with aws: are reserved/);
    const bios = await ship<ErrorJson>('slim/aws-nginx:1', ['--boot-mode', 'legacy-bios']);
    expect(bios.exitCode).toBe(2);
    expect(bios.json.error.message).toMatch(/boot with UEFI/);
    // a repository whose image has no kernel and that holds no kernel core
    const bare = join(tmp.dir, 'bare');
    const tree = join(tmp.dir, 'bare-tree');
    await mkdir(join(tree, 'bin'), { recursive: true });
    await execa('cp', ['/usr/bin/busybox', join(tree, 'bin', 'busybox')]);
    await writeFile(join(tree, 'start'), '#!/bin/busybox sh\nexec /bin/busybox httpd -f -p 80\n', { mode: 0o755 });
    for (const args of [['repo', 'init'], ['image', 'import', tree, '--tag', 'bare/web:1']]) expect((await aim([...args, '--repo', bare])).exitCode).toBe(0);
    const noKernel = await aim<ErrorJson>(['ship', 'aws', 'bare/web:1', '--repo', bare, '--out', newOut()], { env });
    expect(noKernel.exitCode).toBe(4);
    expect(noKernel.json.error.code).toBe('E_NO_KERNEL');
    // credentials without the rights aim needs: the error says so and gives the policy
    fake.ec2.faults.add({ action: 'DescribeImages', times: Infinity, effect: { kind: 'deny' } });
    const denied = await ship<ErrorJson>('slim/aws-nginx:1', ['--name', 'denied']);
    fake.ec2.faults.clear();
    expect(denied.exitCode).toBe(10);
    expect(denied.json.error).toMatchObject({ code: 'E_AWS_DENIED', message: expect.stringMatching(/AWS denied the request .*UnauthorizedOperation/) });
    expect(denied.json.error.hint).toContain('"ebs:PutSnapshotBlock"');
    expect(denied.json.error.hint).not.toContain('s3:PutObject');
    expect(fake.traffic().ebs.requests).toBe(0);
    expect(fake.traffic().s3.requests).toBe(0);
    expect(fake.traffic().ec2.actions.RegisterImage).toBeUndefined();
  }, 300_000);
});

describe('aim ship aws list and rm', () => {
  it('lists the AMIs aim made with their image ids, and rm deregisters one and deletes its snapshots', async () => {
    const listed = await aim<{ amis: { region: string; ami: string; imageId: string; lineage: string; snapshots: string[] }[] }>(['ship', 'aws', 'list', '--repo', repo], { env });
    expect(listed.exitCode, listed.stderr).toBe(0);
    const ours = [...fake.state.images.values()].filter((i) => i.tags.has(TAG.imageId));
    expect(listed.json.amis.map((a) => a.ami).sort()).toEqual(ours.map((i) => i.id).sort());
    const imported = listed.json.amis.find((a) => a.lineage === 'imported')!;
    expect(imported).toMatchObject({ region: REGION, imageId: await imageId('slim/aws-nginx:1') });
    // its publication was shipped with --endpoint-url: the journal carries it, the environment names no endpoint
    const rm = await aim<{ ami: string; publication?: string; removed: { kind: string; id: string }[] }>(['ship', 'aws', 'rm', imported.ami, '--repo', repo], { env: oneEndpointEnv });
    expect(rm.exitCode, rm.stderr).toBe(0);
    expect(rm.json.publication).toBeDefined();
    expect(fake.state.images.has(imported.ami)).toBe(false);
    for (const s of imported.snapshots) expect(fake.state.snapshots.has(s)).toBe(false);
    const gone = await aim<ErrorJson>(['ship', 'aws', 'rm', imported.ami, '--repo', repo], { env });
    expect(gone.exitCode).toBe(3);
    expect(gone.json.error.code).toBe('E_AWS_NO_AMI');
  }, 120_000);
});

describe('credentials never show', () => {
  it('secrets planted in a profile and in the environment appear in no output, error or DEBUG line (a whole ship with them: the faults test)', async () => {
    const credentials = join(tmp.dir, 'credentials');
    await writeFile(credentials, `[planted]\naws_access_key_id = AKIAPLANTEDMARKER000\naws_secret_access_key = ${FILE_SECRET}\naws_session_token = ${TOKEN}\n`);
    const outputs: string[] = [];
    const { AWS_ACCESS_KEY_ID: _, AWS_SECRET_ACCESS_KEY: __, ...noKeys } = env;
    const byProfile = await aim(['ship', 'aws', 'slim/aws-nginx:1', '--repo', repo, '--out', newOut(), '--kernel', 'core/kernel:bookworm', '--name', 'planted', '--profile', 'planted', '--dry-run'], { env: { ...noKeys, AWS_SHARED_CREDENTIALS_FILE: credentials, DEBUG: 'aim:*' } });
    expect(byProfile.exitCode, byProfile.stderr).toBe(0);
    outputs.push(byProfile.stdout, byProfile.stderr);
    const failing = await ship<ErrorJson>('slim/aws-nginx:1', ['--region', 'xx-nowhere-2'], plantedEnv());
    expect(failing.exitCode).toBe(2);
    outputs.push(failing.stdout, failing.stderr);
    expectNoSecrets(outputs);
  }, 300_000);
});
