import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newId, type AwsState, type BlockDeviceMapping, type InstanceRecord } from './aws-state.js';
import { checkId, Ec2Error, invalidValue, missingParameter } from './ec2-error.js';
import { matchesFilters, page, type Filter } from './ec2-filters.js';
import { idempotent, visibleImage } from './ec2-images.js';
import type { Ec2Handler } from './ec2-server.js';
import { tagSet, tagSpecifications, type TagSpecificationInput } from './ec2-tags.js';
import { GUEST_IP, launchInstanceVm, type InstanceVm, type InstanceVmOptions } from './instance-vm.js';

/**
 * Instances that boot for real: RunInstances assembles the AMI's root snapshot into a disk and
 * boots it in QEMU (instance-vm.ts); DescribeInstances shows pending → running (or terminated with
 * a StateReason when the launch failed; stopped/terminated when the guest powers off);
 * TerminateInstances stops QEMU. GetConsoleOutput returns the serial console. Only x86_64 AMIs
 * boot (QEMU here emulates x86_64); at most `maxRunning` instances run at once (beyond that:
 * InsufficientInstanceCapacity), each with `memoryMiB` whatever its type.
 */

export interface InstanceOptions extends InstanceVmOptions {
  maxRunning: number;
  workDir: string;
}

/** The instance types the fake knows: architecture, and whether it is a Nitro type (ENA and HVM required, UEFI possible). */
const FAMILIES: Record<string, { arch: string[]; nitro: boolean }> = {
  m1: { arch: ['i386', 'x86_64'], nitro: false },
  t2: { arch: ['i386', 'x86_64'], nitro: false },
  t3: { arch: ['x86_64'], nitro: true },
  t3a: { arch: ['x86_64'], nitro: true },
  m5: { arch: ['x86_64'], nitro: true },
  c5: { arch: ['x86_64'], nitro: true },
  m6i: { arch: ['x86_64'], nitro: true },
  c6i: { arch: ['x86_64'], nitro: true },
  m7i: { arch: ['x86_64'], nitro: true },
  t4g: { arch: ['arm64'], nitro: true },
  m6g: { arch: ['arm64'], nitro: true },
  c6g: { arch: ['arm64'], nitro: true },
  m7g: { arch: ['arm64'], nitro: true },
};
const SIZES = ['nano', 'micro', 'small', 'medium', 'large', 'xlarge', '2xlarge', '4xlarge'];

const STATES = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 } as const;

function setState(i: InstanceRecord, name: keyof typeof STATES, reason?: { Code: string; Message: string }): void {
  i.state = { Code: STATES[name], Name: name };
  if (reason) {
    i.stateReason = reason;
    i.stateTransitionReason = reason.Message;
  }
}

export class InstanceFleet {
  readonly vms = new Map<string, InstanceVm>();
  private readonly launches = new Set<Promise<void>>();

  constructor(
    private readonly state: AwsState,
    private readonly options: InstanceOptions,
  ) {}

  /** Stops every instance's QEMU and IMDS (server stop). */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.launches]);
    await Promise.allSettled([...this.vms.values()].map((v) => v.stop()));
    this.vms.clear();
  }

  private launch(i: InstanceRecord, rootSnapshotId: string, volumeSizeGiB: number, publicKey: { name: string; key: string } | undefined): void {
    const run = (async () => {
      try {
        const vm = await launchInstanceVm({
          state: this.state,
          dir: join(this.options.workDir, i.id),
          snapshot: this.state.snapshots.get(rootSnapshotId)!,
          volumeSizeGiB,
          volumeId: i.volumeId,
          bootMode: i.bootMode,
          imds: {
            instanceId: i.id,
            imageId: i.imageId,
            instanceType: i.instanceType,
            region: i.region,
            accountId: this.state.accountId,
            privateIp: i.privateIp,
            httpTokens: i.httpTokens,
            ...(publicKey ? { publicKey } : {}),
            ...(i.userData ? { userData: Buffer.from(i.userData, 'base64') } : {}),
          },
          options: this.options,
        });
        if (i.state.Name !== 'pending') {
          // terminated while it was being assembled
          await vm.stop();
          return;
        }
        this.vms.set(i.id, vm);
        i.forwards = vm.forwards;
        i.consoleLog = vm.consoleLog;
        setState(i, 'running');
        void vm.vm.process.then(
          () => this.guestExited(i),
          () => this.guestExited(i),
        );
      } catch (e) {
        i.error = (e as Error).message;
        if (i.state.Name === 'pending') setState(i, 'terminated', { Code: 'Server.InternalError', Message: 'Server.InternalError: Internal error on launch' });
      }
    })();
    this.launches.add(run);
    void run.finally(() => this.launches.delete(run));
  }

  /** QEMU ended on its own (the guest powered off, or the time bound): the instance stops or terminates as its shutdown behavior says. */
  private async guestExited(i: InstanceRecord): Promise<void> {
    const vm = this.vms.get(i.id);
    if (i.state.Name !== 'running' || !vm) return;
    await vm.stop();
    this.vms.delete(i.id);
    const reason = { Code: 'Client.InstanceInitiatedShutdown', Message: 'Client.InstanceInitiatedShutdown: Instance initiated shutdown' };
    setState(i, i.shutdownBehavior === 'terminate' ? 'terminated' : 'stopped', reason);
  }

  /** Shutting down now; terminated once QEMU is gone (DescribeInstances shows it). */
  private terminate(i: InstanceRecord): void {
    setState(i, 'shutting-down', { Code: 'Client.UserInitiatedShutdown', Message: 'Client.UserInitiatedShutdown: User initiated shutdown' });
    const vm = this.vms.get(i.id);
    this.vms.delete(i.id);
    const stopping = (async () => {
      await vm?.stop();
      setState(i, 'terminated');
    })();
    this.launches.add(stopping);
    void stopping.finally(() => this.launches.delete(stopping));
  }

  private describe(i: InstanceRecord): Record<string, unknown> {
    const image = this.state.images.get(i.imageId);
    return {
      InstanceId: i.id,
      ImageId: i.imageId,
      State: i.state,
      PrivateDnsName: i.state.Name === 'terminated' ? '' : `ip-${i.privateIp.replace(/\./g, '-')}.${i.region}.compute.internal`,
      PublicDnsName: '',
      StateTransitionReason: i.stateTransitionReason ?? '',
      ...(i.keyName ? { KeyName: i.keyName } : {}),
      AmiLaunchIndex: 0,
      InstanceType: i.instanceType,
      LaunchTime: i.launchTime,
      Placement: { AvailabilityZone: `${i.region}a`, Tenancy: 'default', GroupName: '' },
      Monitoring: { State: 'disabled' },
      ...(i.state.Name === 'terminated' ? {} : { PrivateIpAddress: i.privateIp }),
      Architecture: i.architecture,
      RootDeviceType: 'ebs',
      RootDeviceName: i.rootDeviceName,
      BlockDeviceMappings: i.state.Name === 'terminated' ? [] : [{ DeviceName: i.rootDeviceName, Ebs: { VolumeId: i.volumeId, Status: 'attached', AttachTime: i.launchTime, DeleteOnTermination: true } }],
      VirtualizationType: 'hvm',
      ...(i.clientToken ? { ClientToken: i.clientToken } : {}),
      Hypervisor: 'xen',
      EnaSupport: image?.enaSupport ?? true,
      ...(i.stateReason ? { StateReason: i.stateReason } : {}),
      Tags: tagSet(i.tags),
      BootMode: image?.bootMode ?? i.bootMode,
      CurrentInstanceBootMode: i.bootMode,
      MetadataOptions: { State: 'applied', HttpTokens: i.httpTokens, HttpPutResponseHopLimit: 2, HttpEndpoint: 'enabled', HttpProtocolIpv6: 'disabled', InstanceMetadataTags: 'disabled' },
      PlatformDetails: 'Linux/UNIX',
      UsageOperation: 'RunInstances',
    };
  }

  private reservation(reservationId: string, instances: InstanceRecord[]): Record<string, unknown> {
    return { ReservationId: reservationId, OwnerId: this.state.accountId, Groups: [], Instances: instances.map((i) => this.describe(i)) };
  }

  private find(region: string, id: string): InstanceRecord {
    checkId(id, 'i', 'InvalidInstanceID.Malformed');
    const i = this.state.instances.get(id);
    if (!i || i.region !== region) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    return i;
  }

  actions(): Record<string, Ec2Handler> {
    const state = this.state;
    return {
      RunInstances: async (call) => {
        const { input, region } = call;
        const image = visibleImage(state, region, input.ImageId);
        if (input.MinCount === undefined) throw missingParameter('MinCount');
        if (input.MaxCount === undefined) throw missingParameter('MaxCount');
        if (input.MinCount < 1 || input.MaxCount < input.MinCount) throw invalidValue('minCount', input.MinCount, 'MinCount must be at least 1 and no more than MaxCount.');
        if (image.state !== 'available') throw new Ec2Error('InvalidAMIID.Unavailable', `The image id '[${image.id}]' is not available (${image.state})`);
        const type = (input.InstanceType as string | undefined) ?? 'm1.small';
        const [family, size] = type.split('.');
        const known = family === undefined ? undefined : FAMILIES[family];
        if (!known || !size || !SIZES.includes(size)) throw new Ec2Error('InvalidParameterValue', `The following supplied instance types do not exist: [${type}]`);
        if (!known.arch.includes(image.architecture)) {
          throw new Ec2Error(
            'InvalidParameterValue',
            `The architecture '${known.arch.at(-1)}' of the specified instance type does not match the architecture '${image.architecture}' of the specified AMI. Specify an instance type and an AMI that have matching architectures, and try again. You can use 'describe-instance-types' or 'DescribeInstanceTypes' to find suitable instance types.`,
          );
        }
        if (known.nitro && image.virtualizationType !== 'hvm') throw new Ec2Error('InvalidParameterCombination', `Virtualization type 'hvm' is required for instances of type '${type}'.`);
        if (known.nitro && !image.enaSupport) {
          throw new Ec2Error('InvalidParameterCombination', `Enhanced networking with the Elastic Network Adapter (ENA) is required for the '${type}' instance type. Ensure that you are using an AMI that is enabled for ENA.`);
        }
        const bootMode: 'uefi' | 'legacy-bios' =
          image.bootMode === 'uefi' ? 'uefi' : image.bootMode === 'uefi-preferred' && known.nitro ? 'uefi' : image.architecture === 'arm64' ? 'uefi' : 'legacy-bios';
        if (bootMode === 'uefi' && !known.nitro) throw new Ec2Error('InvalidParameterCombination', `The instance type '${type}' does not support the uefi boot mode of AMI ${image.id}.`);
        if (image.architecture !== 'x86_64' && image.architecture !== 'i386') throw new Ec2Error('Unsupported', `The fake EC2 boots x86_64 instances only (QEMU here emulates x86_64), not ${image.architecture}`);
        const key = input.KeyName === undefined ? undefined : [...state.keyPairs.values()].find((k) => k.region === region && k.name === input.KeyName);
        if (input.KeyName !== undefined && !key) throw new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${input.KeyName}' does not exist`);
        const httpTokens = input.MetadataOptions?.HttpTokens ?? (image.imdsSupport === 'v2.0' ? 'required' : 'optional');
        if (httpTokens !== 'required' && httpTokens !== 'optional') throw invalidValue('HttpTokens', httpTokens);
        if (input.UserData !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(input.UserData)) throw new Ec2Error('InvalidParameterValue', 'Invalid BASE64 encoding of user data.');
        const shutdown = input.InstanceInitiatedShutdownBehavior ?? 'stop';
        if (shutdown !== 'stop' && shutdown !== 'terminate') throw invalidValue('instanceInitiatedShutdownBehavior', shutdown);
        const root = image.blockDeviceMappings.find((m) => m.DeviceName === image.rootDeviceName)!;
        const override = ((input.BlockDeviceMappings ?? []) as BlockDeviceMapping[]).find((m) => m.DeviceName === image.rootDeviceName);
        const rootSnapshot = state.snapshots.get(root.Ebs!.SnapshotId!);
        if (!rootSnapshot) throw new Ec2Error('InvalidSnapshot.NotFound', `The snapshot '${root.Ebs!.SnapshotId}' does not exist.`);
        const volumeSize = override?.Ebs?.VolumeSize ?? root.Ebs!.VolumeSize ?? rootSnapshot.volumeSize;
        if (volumeSize < rootSnapshot.volumeSize) {
          throw new Ec2Error('InvalidBlockDeviceMapping', `Volume of size ${volumeSize}GB is smaller than snapshot '${rootSnapshot.id}', expect size >= ${rootSnapshot.volumeSize}GB`);
        }
        const tags = tagSpecifications(input.TagSpecifications as TagSpecificationInput[] | undefined, ['instance', 'volume', 'network-interface']);
        const reservationId = idempotent(state, call, input.ClientToken, () => {
          const running = [...state.instances.values()].filter((i) => i.state.Name === 'pending' || i.state.Name === 'running').length;
          const room = this.options.maxRunning - running;
          if (room < input.MinCount) {
            // one of EC2's server error codes (5xx): SDKs retry it
            throw new Ec2Error('InsufficientInstanceCapacity', `We currently do not have sufficient ${type} capacity in the Availability Zone you requested (${region}a). Our system will be working on provisioning additional capacity.`, 500);
          }
          const rid = newId('r');
          for (let n = 0; n < Math.min(room, input.MaxCount); n++) {
            const i: InstanceRecord = {
              id: newId('i'),
              region,
              reservationId: rid,
              imageId: image.id,
              instanceType: type,
              ...(key ? { keyName: key.name } : {}),
              state: { Code: 0, Name: 'pending' },
              launchTime: new Date(),
              ...(input.ClientToken ? { clientToken: input.ClientToken } : {}),
              architecture: image.architecture,
              bootMode,
              httpTokens,
              ...(input.UserData ? { userData: input.UserData } : {}),
              shutdownBehavior: shutdown,
              rootDeviceName: image.rootDeviceName,
              volumeId: newId('vol'),
              privateIp: GUEST_IP,
              forwards: [],
              tags: new Map(tags.get('instance') ?? []),
            };
            state.instances.set(i.id, i);
            this.launch(i, rootSnapshot.id, volumeSize, key ? { name: key.name, key: key.publicKey } : undefined);
          }
          return rid;
        });
        return this.reservation(reservationId, [...state.instances.values()].filter((i) => i.reservationId === reservationId));
      },

      DescribeInstances: ({ input, region }) => {
        const ids = input.InstanceIds as string[] | undefined;
        if (ids?.length && input.MaxResults !== undefined) throw new Ec2Error('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
        for (const id of ids ?? []) this.find(region, id);
        const found = [...state.instances.values()].filter(
          (i) =>
            i.region === region &&
            (!ids?.length || ids.includes(i.id)) &&
            matchesFilters(input.Filters as Filter[] | undefined, i.tags, {
              'instance-id': () => i.id,
              'image-id': () => i.imageId,
              'instance-state-name': () => i.state.Name,
              'instance-state-code': () => i.state.Code,
              'instance-type': () => i.instanceType,
              'key-name': () => i.keyName,
              'reservation-id': () => i.reservationId,
              architecture: () => i.architecture,
              'client-token': () => i.clientToken,
              'boot-mode': () => i.bootMode,
            }),
        );
        const p = page(found, input);
        const reservations = [...new Set(p.items.map((i) => i.reservationId))].map((rid) => this.reservation(rid, p.items.filter((i) => i.reservationId === rid)));
        return { Reservations: reservations, ...(p.NextToken ? { NextToken: p.NextToken } : {}) };
      },

      TerminateInstances: ({ input, region }) => {
        const ids = (input.InstanceIds ?? []) as string[];
        if (ids.length === 0) throw missingParameter('InstanceId');
        const instances = ids.map((id) => this.find(region, id));
        const changes = [];
        for (const i of instances) {
          const previous = { ...i.state };
          if (i.state.Name !== 'terminated' && i.state.Name !== 'shutting-down') this.terminate(i);
          changes.push({ InstanceId: i.id, PreviousState: previous, CurrentState: { ...i.state } });
        }
        return { TerminatingInstances: changes };
      },

      GetConsoleOutput: async ({ input, region }) => {
        const i = this.find(region, input.InstanceId);
        const log = i.consoleLog ? await readFile(i.consoleLog).catch(() => Buffer.alloc(0)) : Buffer.alloc(0);
        // EC2 keeps the last 64 KiB of the serial console
        const tail = log.subarray(Math.max(0, log.length - 65536));
        return { InstanceId: i.id, Timestamp: new Date(), ...(tail.length ? { Output: tail.toString('base64') } : {}) };
      },
    };
  }
}
