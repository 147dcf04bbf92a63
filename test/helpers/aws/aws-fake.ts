import { S3Client } from '@aws-sdk/client-s3';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AwsState, type AwsStateOptions } from './aws-state.js';
import { BlockStore } from './block-store.js';
import { EbsServer } from './ebs-server.js';
import { startEndpointRouter } from './endpoint-router.js';
import { imageActions } from './ec2-images.js';
import { importActions } from './ec2-import.js';
import { InstanceFleet } from './ec2-instances.js';
import { keyPairActions } from './ec2-keypairs.js';
import { Ec2Server } from './ec2-server.js';
import { snapshotActions } from './ec2-snapshots.js';
import { tagActions } from './ec2-tags.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3Fake } from './s3-server.js';
import type { TrafficReport } from './traffic.js';

/**
 * AWS on 127.0.0.1 for tests: an EC2 Query server, an EBS direct server and s3rver, over one
 * account's state (snapshots made through EBS are the ones EC2 describes and registers; disks
 * ImportSnapshot reads come from the S3 server). Start it with startAwsFake(), point the real SDK
 * clients at `endpoints` with `credentials`, and stop() it in afterAll/finally: stop() kills the
 * instances' QEMU, closes every server and removes the fake's directory, whatever state it is in.
 */
export interface AwsFakeOptions extends AwsStateOptions {
  /** Buckets s3rver starts with. */
  buckets?: string[];
  /** Milliseconds a registered AMI is pending (default 100). */
  registerDelayMs?: number;
  /** Milliseconds a CopyImage takes (default 200). */
  copyDelayMs?: number;
  /** Milliseconds CompleteSnapshot takes to seal a snapshot (default 100). */
  sealDelayMs?: number;
  /** Length of a minute for EBS StartSnapshot's Timeout (default 60000). */
  minuteMs?: number;
  /** Milliseconds per step of an import task (default 200). */
  importStepMs?: number;
  /** RunInstances: guest memory, QEMU's time bound, forwarded guest ports, how many run at once. */
  instances?: { memoryMiB?: number; maxSeconds?: number; forwardPorts?: number[]; maxRunning?: number; accel?: 'tcg' | 'kvm' };
}

export interface AwsFake {
  state: AwsState;
  ec2: Ec2Server;
  ebs: EbsServer;
  s3: S3Fake;
  fleet: InstanceFleet;
  endpoints: { ec2: string; ebs: string; s3: string };
  /** One URL for all three (routed by the SigV4 scope's service), for --endpoint-url and AWS_ENDPOINT_URL. */
  endpoint: string;
  /** Where s3rver keeps buckets, objects and unfinished multipart uploads. */
  s3Directory: string;
  /** Credentials every server accepts (s3rver checks signatures made with them). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Requests and bytes each server received since start (or the last resetTraffic). */
  traffic(): { ec2: TrafficReport; ebs: TrafficReport; s3: TrafficReport };
  resetTraffic(): void;
  stop(): Promise<void>;
}

export async function startAwsFake(options: AwsFakeOptions = {}): Promise<AwsFake> {
  const dir = await mkdtemp(join(tmpdir(), 'aim-aws-fake-'));
  const cleanups: (() => Promise<void>)[] = [async () => rm(dir, { recursive: true, force: true })];
  const stopAll = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  };
  try {
    for (const d of ['blocks', 's3', 'import', 'instances']) await mkdir(join(dir, d));
    const state = new AwsState(new BlockStore(join(dir, 'blocks')), options);
    cleanups.push(async () => state.dispose());
    const s3 = await startS3Server({ directory: join(dir, 's3'), scratch: join(dir, 's3-uploads'), ...(options.buckets ? { buckets: options.buckets } : {}) });
    cleanups.push(() => s3.stop());
    const s3Client = new S3Client({ region: 'us-east-1', endpoint: s3.url, forcePathStyle: true, credentials: S3RVER_CREDENTIALS });
    cleanups.push(async () => s3Client.destroy());
    const i = options.instances ?? {};
    const fleet = new InstanceFleet(state, {
      memoryMiB: i.memoryMiB ?? 512,
      maxSeconds: i.maxSeconds ?? 600,
      forwardPorts: i.forwardPorts ?? [22, 80],
      maxRunning: i.maxRunning ?? 1,
      accel: i.accel ?? (process.env.AIM_QEMU_ACCEL === 'kvm' ? 'kvm' : 'tcg'),
      workDir: join(dir, 'instances'),
    });
    cleanups.push(() => fleet.stopAll());
    const ec2 = new Ec2Server(state, {
      ...imageActions(state, { registerDelayMs: options.registerDelayMs ?? 100, copyDelayMs: options.copyDelayMs ?? 200 }),
      ...snapshotActions(state),
      ...tagActions(state),
      ...importActions(state, { stepMs: options.importStepMs ?? 200, workDir: join(dir, 'import'), s3: s3Client }),
      ...keyPairActions(state),
      ...fleet.actions(),
    });
    await ec2.start();
    cleanups.push(() => ec2.stop());
    const ebs = new EbsServer(state, { ...(options.sealDelayMs === undefined ? {} : { sealDelayMs: options.sealDelayMs }), ...(options.minuteMs === undefined ? {} : { minuteMs: options.minuteMs }) });
    await ebs.start();
    cleanups.push(() => ebs.stop());
    const router = await startEndpointRouter({ ec2: ec2.url, ebs: ebs.url, s3: s3.url });
    cleanups.push(() => router.close());
    let stopped: Promise<void> | undefined;
    return {
      state,
      ec2,
      ebs,
      s3,
      fleet,
      endpoints: { ec2: ec2.url, ebs: ebs.url, s3: s3.url },
      endpoint: router.url,
      s3Directory: join(dir, 's3'),
      credentials: { ...S3RVER_CREDENTIALS },
      traffic: () => ({ ec2: ec2.traffic.report(), ebs: ebs.traffic.report(), s3: s3.traffic.report() }),
      resetTraffic() {
        ec2.traffic.reset();
        ebs.traffic.reset();
        s3.traffic.reset();
      },
      stop() {
        stopped ??= stopAll();
        return stopped;
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
