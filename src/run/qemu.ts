import { existsSync, statSync } from 'node:fs';
import { copyFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { basename, dirname, extname, join } from 'node:path';
import { AimError, ConfigError, ExitCode, InputError, NotFoundError, ToolFailedError, errnoCode } from '../lib/errors.js';
import { requireTool, runTool, spawnTool, type StreamingProcess } from '../lib/exec.js';
import { PLATFORM, type Platform, type PlatformSettings } from '../core/bootable/platforms.js';
import { formatGuid } from '../core/import/disk/partition-table.js';
import { describeHttpExpectation, unmetHttp, type HttpExpectation } from '../core/probe/expectation.js';
import { probeWhenReady } from '../core/probe/readiness.js';

export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/** A disk aim built (or any disk QEMU reads), booted from its first disk under UEFI. */
export interface DiskArtifact {
  kind: 'disk';
  path: string;
  format: 'raw' | 'qcow2' | 'vmdk';
}

/** An OVA: booted from the VMDK inside it, extracted to scratch space first. */
export interface OvaArtifact {
  kind: 'ova';
  path: string;
}

/**
 * A PXE bundle (aim build --format pxe): QEMU's TFTP server serves its directory and DHCP names
 * boot.ipxe, which the NIC's own iPXE ROM (package ipxe-qemu) fetches and runs.
 */
export interface PxeArtifact {
  kind: 'pxe';
  dir: string;
  bootfile: string;
  /** Served by HTTP on this port of 127.0.0.1 (the guest's 10.0.2.2) instead of QEMU's TFTP server. */
  httpPort?: number;
}

/**
 * A machine with no disk that boots from its network, as bare metal does from a boot server
 * (aim pxe serve): with the NIC's own iPXE ROM (QEMU's), or with the firmware's PXE client
 * (OVMF's; SeaBIOS has none), which must first fetch iPXE by TFTP. Needs `tap` networking.
 */
export interface NetworkBoot {
  kind: 'network';
  rom: 'ipxe' | 'firmware';
}

/** How a built artifact is booted: what a `--out` directory or a disk file holds. */
export type BootArtifact = DiskArtifact | OvaArtifact | PxeArtifact;

/**
 * The virtual devices the guest gets: virtio (disk and NIC, QEMU's own), or VMware's (a PVSCSI
 * controller with the disk, a VMXNET3 NIC), which an OVA's vmware initramfs has drivers for.
 */
export const BOOT_DEVICES = ['virtio', 'vmware'] as const;
export type BootDevices = (typeof BOOT_DEVICES)[number];

/** The platform whose devices (bootable/platforms: PLATFORM[…].qemu) each choice emulates. */
const DEVICES_PLATFORM: Record<BootDevices, Platform> = { virtio: 'qemu', vmware: 'vmware' };

/** The QEMU disk controller and NIC of a device choice. */
export function emulatedDevices(devices: BootDevices): NonNullable<PlatformSettings['qemu']> {
  return PLATFORM[DEVICES_PLATFORM[devices]].qemu!;
}

const DISK_EXTENSIONS: Record<string, DiskArtifact['format']> = { '.raw': 'raw', '.img': 'raw', '.qcow2': 'qcow2', '.vmdk': 'vmdk' };
const bootable = (name: string) => DISK_EXTENSIONS[extname(name)] !== undefined || extname(name) === '.ova';

/** Finds the bootable artifact in a file or an `aim build` output directory. */
export async function findBootArtifact(path: string): Promise<BootArtifact> {
  if (!existsSync(path)) throw new NotFoundError(`${path} does not exist`, { hint: 'give a disk file or the --out directory of aim build' });
  if (basename(path) === 'boot.ipxe') return { kind: 'pxe', dir: dirname(path), bootfile: 'boot.ipxe' };
  if (statSync(path).isDirectory()) {
    const names = (await readdir(path)).sort();
    if (names.includes('boot.ipxe')) return { kind: 'pxe', dir: path, bootfile: 'boot.ipxe' };
    const disk = names.find(bootable);
    if (disk) return findBootArtifact(join(path, disk));
    throw new InputError('E_NOT_BOOTABLE', `${path} holds no bootable artifact (a .raw, .qcow2 or .vmdk disk, an .ova, or a PXE bundle with boot.ipxe)`, {
      hint: 'build one with: aim build <image> --format raw --out DIR',
    });
  }
  if (extname(path) === '.ova') return { kind: 'ova', path };
  const format = DISK_EXTENSIONS[extname(path)];
  if (!format) throw new InputError('E_NOT_BOOTABLE', `${basename(path)}: not a disk aim can boot (.raw, .img, .qcow2, .vmdk or .ova)`);
  return { kind: 'disk', path, format };
}

/** What QEMU boots: the artifact itself, or the VMDK an OVA carries, extracted into `dir`. */
export async function bootDisk(artifact: BootArtifact, dir: string, signal?: AbortSignal): Promise<DiskArtifact | PxeArtifact> {
  if (artifact.kind !== 'ova') return artifact;
  const { extractOvaDisk } = await import('../core/build/ova.js');
  return { kind: 'disk', path: await extractOvaDisk(artifact.path, dir, signal), format: 'vmdk' };
}

/** The devices to boot an artifact on when none are asked for: VMware's for an OVA (its initramfs has no virtio drivers). */
export function defaultDevices(artifact: BootArtifact | NetworkBoot): BootDevices {
  return artifact.kind === 'ova' ? 'vmware' : 'virtio';
}

export interface VmSpec {
  artifact: DiskArtifact | PxeArtifact | NetworkBoot;
  /** UEFI (OVMF, default) or legacy BIOS (SeaBIOS). */
  firmware?: 'uefi' | 'bios';
  /** Kill QEMU after this long, whatever happens (a bound for tests and benchmarks). */
  maxSeconds?: number;
  /** Disk controller and NIC model (default virtio). */
  devices?: BootDevices;
  /**
   * vmware devices: the byte range of the disk's EFI system partition, shown to the firmware as a
   * read-only virtio disk of its own. Debian's OVMF has no PVSCSI driver (PvScsiDxe), so it cannot
   * read the boot loader from the pvscsi disk as VMware's firmware does; the guest kernel of a
   * vmware build has no virtio driver, so Linux sees only the pvscsi disk and its root on it.
   */
  firmwareEsp?: { offset: number; size: number };
  /** Directory for the firmware variables and the console log (the caller's scratch space). */
  dir: string;
  memoryMiB: number;
  /** host port → guest port, TCP, on 127.0.0.1. */
  forwards: { host: number; guest: number }[];
  accel: 'tcg' | 'kvm';
  /** TCG translation cache in MiB: QEMU's resident memory is dominated by it under software emulation. */
  tbSizeMiB?: number;
  /** Console to this file (default) or to QEMU's stdio. */
  console: 'file' | 'stdio';
  /** Kills QEMU (and the tools run before it) when it aborts. */
  signal?: AbortSignal;
  /**
   * virtio devices: the bus of the disk, virtio-blk (default) or NVMe, as EC2's Nitro instances
   * present EBS volumes (with the volume id as the controller's serial number).
   */
  disk?: { bus: 'virtio' } | { bus: 'nvme'; serial: string };
  /**
   * User networking: the guest network (CIDR; QEMU's default is 10.0.2.0/24) and guest forwards:
   * each TCP connection the guest opens to address:port runs `command` on the host with the
   * connection as its stdin and stdout (QEMU's guestfwd; the address must be in the network).
   */
  userNet?: { network?: string; guestForwards?: { address: string; port: number; command: string[] }[] };
  /**
   * The NIC on a tap device instead of user networking (no forwards then): the guest is on
   * whatever network the tap is bridged to. With `netns`, QEMU runs in that network namespace
   * (`ip netns exec`), where the tap is.
   */
  tap?: { ifname: string; mac: string; netns?: string };
  /**
   * QEMU joins the network namespace of this process (nsenter): its user networking, and the
   * forwards from 127.0.0.1, then live in that namespace (qualification probes the guest from it).
   */
  netnsOf?: number;
}

export function consoleLogPath(spec: Pick<VmSpec, 'dir'>): string {
  return join(spec.dir, 'console.log');
}

/**
 * SeaBIOS's serial console (its fw_cfg file etc/sercon-port: the port, a little-endian integer,
 * here COM1 0x3f8): what the BIOS and the NIC's iPXE print goes to the serial log too. A network
 * boot under SeaBIOS shows iPXE's messages (an unassigned machine's, a failed download) there.
 */
export function serconPath(spec: Pick<VmSpec, 'dir'>): string {
  return join(spec.dir, 'sercon-port');
}
const SERCON_PORT = Buffer.from([0xf8, 0x03]);

const wantsSercon = (spec: VmSpec) => spec.artifact.kind === 'network' && (spec.firmware ?? 'uefi') === 'bios';

/**
 * QEMU's command line for a spec (pure). For disk boots the NIC carries no option ROM, so it never
 * PXE-boots before the disk; for PXE boots QEMU's own iPXE ROM fetches the bootfile by TFTP from
 * QEMU's server, or by HTTP from the host (10.0.2.2 is the host's 127.0.0.1 in user networking). A
 * monitor socket in the spec's directory lets the caller press the ACPI power button.
 */
export function qemuArgs(spec: VmSpec): string[] {
  const a = spec.artifact;
  const accel = spec.accel === 'kvm' ? 'kvm' : `tcg,tb-size=${spec.tbSizeMiB ?? 256}`;
  const hostfwd = spec.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.host}-:${f.guest}`).join('');
  const emulated = emulatedDevices(spec.devices ?? 'virtio');
  const uefi = (spec.firmware ?? 'uefi') === 'uefi';
  const disk =
    a.kind === 'pxe' || a.kind === 'network'
      ? []
      : [
          // a stream-optimized VMDK cannot be written in place: writes go to a temporary overlay
          '-drive', `file=${a.path},if=none,id=d0,format=${a.format}${a.format === 'vmdk' ? ',snapshot=on' : ''}`,
          ...(emulated.disk === 'pvscsi' ? ['-device', 'pvscsi,id=scsi0', '-device', 'scsi-hd,drive=d0,bus=scsi0.0', ...firmwareEspArgs(spec)] : diskDevice(spec, emulated.disk)),
        ];
  const pxe = a.kind !== 'pxe' ? '' : a.httpPort ? `,bootfile=http://10.0.2.2:${a.httpPort}/${a.bootfile}` : `,tftp=${a.dir},bootfile=${a.bootfile}`;
  // the NIC's option ROM: QEMU's iPXE for PXE boots, none for disks (and for a firmware PXE client)
  const rom = a.kind === 'pxe' || (a.kind === 'network' && a.rom === 'ipxe') ? '' : ',romfile=';
  const netdev = spec.tap ? `tap,id=n0,ifname=${spec.tap.ifname},script=no,downscript=no` : `user,id=n0${userNetArgs(spec)}${hostfwd}${pxe}`;
  return [
    '-nodefaults', '-machine', 'q35', '-accel', accel, '-m', String(spec.memoryMiB), '-smp', '1', '-display', 'none', '-no-reboot',
    '-serial', spec.console === 'file' ? `file:${consoleLogPath(spec)}` : 'stdio',
    '-monitor', `unix:${join(spec.dir, 'monitor.sock')},server=on,wait=off`,
    ...(uefi ? ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${join(spec.dir, 'OVMF_VARS.fd')}`] : []),
    ...(wantsSercon(spec) ? ['-fw_cfg', `name=etc/sercon-port,file=${serconPath(spec)}`] : []),
    ...disk,
    '-netdev', netdev,
    '-device', `${emulated.nic},netdev=n0${spec.tap ? `,mac=${spec.tap.mac}` : ''}${rom}`,
  ];
}

function diskDevice(spec: VmSpec, emulated: string): string[] {
  const d = spec.disk;
  if (d?.bus === 'nvme') return ['-device', `nvme,drive=d0,serial=${qemuOptionValue(d.serial)}`];
  return ['-device', `${emulated},drive=d0`];
}

/** A value inside a QEMU -option list: commas doubled. */
const qemuOptionValue = (v: string) => v.replace(/,/g, ',,');

function userNetArgs(spec: VmSpec): string {
  const net = spec.userNet;
  if (!net) return '';
  // QEMU splits the command like a shell (g_shell_parse_argv): quote every word
  const quote = (w: string) => `'${w.replace(/'/g, `'\\''`)}'`;
  const forwards = (net.guestForwards ?? []).map((f) => `,guestfwd=tcp:${f.address}:${f.port}-cmd:${qemuOptionValue(f.command.map(quote).join(' '))}`);
  return `${net.network ? `,net=${net.network}` : ''}${forwards.join('')}`;
}

function firmwareEspArgs(spec: VmSpec): string[] {
  const esp = spec.firmwareEsp;
  if (!esp || spec.artifact.kind !== 'disk') return [];
  const file = `file.driver=${spec.artifact.format},file.file.driver=file,file.file.filename=${spec.artifact.path}`;
  return ['-drive', `if=none,id=esp,driver=raw,offset=${esp.offset},size=${esp.size},${file},readonly=on`, '-device', 'virtio-blk-pci,drive=esp'];
}

const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

/** Where a GPT disk's EFI system partition lies: read from the table in its first sectors (through qemu-img, any format). */
export async function findEsp(disk: DiskArtifact, scratch: string, signal?: AbortSignal): Promise<{ offset: number; size: number }> {
  const head = join(scratch, 'gpt-head.raw');
  await runTool('qemu-img', ['dd', '-f', disk.format, '-O', 'raw', 'bs=512', 'count=34', `if=${disk.path}`, `of=${head}`], { ...(signal ? { cancelSignal: signal } : {}) });
  const b = await readFile(head);
  const none = () => new InputError('E_NOT_BOOTABLE', `${disk.path}: no GPT with an EFI system partition in its first sectors`, { hint: 'boot disks aim built, or use --devices virtio' });
  if (b.length < 1024 || b.subarray(512, 520).toString('latin1') !== 'EFI PART') throw none();
  const entriesLba = Number(b.readBigUInt64LE(512 + 72));
  const count = b.readUInt32LE(512 + 80);
  const size = b.readUInt32LE(512 + 84);
  for (let i = 0; i < count && size >= 48; i++) {
    const at = entriesLba * 512 + i * size;
    if (at + size > b.length) break;
    if (formatGuid(b.subarray(at, at + 16)) !== ESP_TYPE) continue;
    const first = Number(b.readBigUInt64LE(at + 32));
    const last = Number(b.readBigUInt64LE(at + 40));
    return { offset: first * 512, size: (last - first + 1) * 512 };
  }
  throw none();
}

/** A free TCP port on 127.0.0.1 (for host forwards given as 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningVm {
  pid: number;
  process: StreamingProcess;
  /** What QEMU wrote to stderr so far. */
  stderr(): string;
  /** True once QEMU has exited. */
  exited(): boolean;
  /** Kills QEMU (by its pid) if it still runs and waits for it. */
  stop(): Promise<void>;
  console(): Promise<string>;
  /** Presses the ACPI power button (monitor: system_powerdown) and waits for QEMU to exit. */
  powerDown(timeoutMs: number): Promise<{ exitCode: number | undefined; seconds: number }>;
  /** Polls the console until `pattern` shows; seconds counted from QEMU's start. */
  waitForConsole(pattern: RegExp, timeoutMs: number): Promise<{ seconds: number }>;
}

/** Starts QEMU for a spec. Checks the tools and the firmware first. */
export async function startVm(spec: VmSpec): Promise<RunningVm> {
  requireTool('qemu-system-x86_64', 'boot artifacts in QEMU');
  const uefi = (spec.firmware ?? 'uefi') === 'uefi';
  if (uefi && !existsSync(OVMF_CODE)) throw new ConfigError(`UEFI firmware ${OVMF_CODE} is missing`, { hint: 'apt-get install ovmf' });
  if (spec.artifact.kind === 'pxe' && !existsSync(join(spec.artifact.dir, spec.artifact.bootfile))) throw new NotFoundError(`${join(spec.artifact.dir, spec.artifact.bootfile)} does not exist`);
  if (spec.accel === 'kvm' && !existsSync('/dev/kvm')) throw new ConfigError('--accel kvm needs /dev/kvm, which this machine does not have', { hint: 'use --accel tcg' });
  if (uefi) await copyFile(OVMF_VARS, join(spec.dir, 'OVMF_VARS.fd'));
  if (wantsSercon(spec)) await writeFile(serconPath(spec), SERCON_PORT);
  if (spec.devices === 'vmware' && !spec.firmwareEsp && spec.artifact.kind === 'disk') spec = { ...spec, firmwareEsp: await findEsp(spec.artifact, spec.dir, spec.signal) };
  const started = Date.now();
  if (spec.tap && spec.forwards.length > 0) throw new ConfigError('port forwards need user networking, not a tap device');
  if (spec.artifact.kind === 'network' && !spec.tap) throw new ConfigError('a network boot needs a tap device on the boot server\'s network');
  const [tool, prefix] = spec.tap?.netns
    ? ['ip', ['netns', 'exec', spec.tap.netns, requireTool('qemu-system-x86_64')]]
    : spec.netnsOf !== undefined
      ? ['nsenter', ['--target', String(spec.netnsOf), '--net', '--', requireTool('qemu-system-x86_64')]]
      : ['qemu-system-x86_64', []];
  const { child: qemu } = await spawnTool(tool, [...prefix, ...qemuArgs(spec)], {
    ...(spec.maxSeconds === undefined ? {} : { timeout: spec.maxSeconds * 1000 }),
    stdin: spec.console === 'stdio' ? 'inherit' : 'ignore',
    stdout: spec.console === 'stdio' ? 'inherit' : 'ignore',
    stderr: 'pipe',
    ...(spec.signal ? { cancelSignal: spec.signal } : {}),
  });
  const stderr: Buffer[] = [];
  qemu.stderr?.on('data', (d: Buffer) => stderr.push(d));
  const stderrText = () => Buffer.concat(stderr).toString('utf8');
  let done = false;
  void qemu.then(() => (done = true));
  if (qemu.pid === undefined) {
    const failed = await qemu;
    throw new ToolFailedError(['qemu-system-x86_64'], undefined, stderrText() || failed.message || 'it could not be started');
  }
  const pid = qemu.pid;
  const readConsole = () => readFile(consoleLogPath(spec), 'utf8').catch(() => '');
  return {
    pid,
    process: qemu,
    stderr: stderrText,
    exited: () => done,
    async stop() {
      try {
        if (!done) process.kill(pid, 'SIGKILL');
      } catch (e) {
        // QEMU already exited (a Ctrl-C reaches it too) but its promise has not settled yet
        if (errnoCode(e) !== 'ESRCH') throw e;
      }
      await qemu.catch(() => undefined);
    },
    console: readConsole,
    async powerDown(timeoutMs) {
      const t0 = Date.now();
      // the monitor keeps its connection open: write the command, give it a moment, hang up
      await new Promise<void>((resolve, reject) => {
        const sock = connect(join(spec.dir, 'monitor.sock'), () => sock.write('system_powerdown\n', () => setTimeout(() => (sock.destroy(), resolve()), 500)));
        sock.on('error', reject);
      });
      const res = await Promise.race([qemu.catch(() => undefined), sleep(timeoutMs).then(() => 'timeout' as const)]);
      if (res === 'timeout') throw new AimError('E_BOOT_NO_POWEROFF', `QEMU still runs ${timeoutMs / 1000} s after the power button${consoleTail(await readConsole())}`, ExitCode.verifyFailed);
      return { exitCode: res?.exitCode, seconds: (Date.now() - t0) / 1000 };
    },
    async waitForConsole(pattern, timeoutMs) {
      while (Date.now() - started < timeoutMs) {
        if (pattern.test(await readConsole())) return { seconds: (Date.now() - started) / 1000 };
        if (done) break;
        await sleep(500);
      }
      throw new AimError('E_BOOT_NO_ANSWER', `the console did not show ${pattern} within ${timeoutMs / 1000} s${consoleTail(await readConsole())}`, ExitCode.verifyFailed);
    },
  };
}

/** One HTTP GET on 127.0.0.1. */
export function httpGet(port: number, path: string, timeoutMs = 3000): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export interface HttpAnswer {
  status: number;
  body: Buffer;
  /** From QEMU's start to the answer that met the expectation. */
  seconds: number;
  tries: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls an HTTP path through a forwarded port (core/probe/readiness: short backoff) until the
 * guest's answer meets the expectation (default: any 2xx), QEMU exits or the budget is spent.
 * Errors carry the last lines of the guest console.
 */
export async function waitForHttp(vm: RunningVm, port: number, path: string, timeoutMs: number, started = Date.now(), expect: HttpExpectation = {}, signal?: AbortSignal): Promise<HttpAnswer> {
  const url = `http://127.0.0.1:${port}${path}`;
  let body: Buffer = Buffer.alloc(0);
  const run = await probeWhenReady<string, { status?: number; bytes?: number; bodyTail?: string; error?: string; unmet?: string }>({
    probes: [path],
    start: started,
    deadline: started + timeoutMs,
    label: () => url,
    expectation: () => describeHttpExpectation(expect),
    judge: (_, r) => r.unmet,
    async attempt() {
      try {
        const answer = await httpGet(port, path);
        const text = answer.body.toString('utf8');
        const unmet = unmetHttp(expect, { status: answer.status, body: text });
        body = answer.body;
        return { status: answer.status, bytes: answer.body.length, bodyTail: text.slice(-512), ...(unmet === undefined ? {} : { unmet }) };
      } catch (e) {
        const error = (e as Error).message;
        return { error, unmet: error };
      }
    },
    async abandon() {
      if (!vm.exited()) return;
      const res = await vm.process;
      const why = `QEMU exited (${res.exitCode ?? res.signal}) before the guest answered: ${vm.stderr().trim().slice(-400)}`;
      throw new AimError('E_BOOT_NO_ANSWER', `${why}${consoleTail(await vm.console())}`, ExitCode.verifyFailed);
    },
    outputTail: async () => (await vm.console()).split('\n').slice(-40).join('\n'),
    tailLabel: 'guest console',
    ...(signal ? { signal } : {}),
    hint: 'boot without --probe to watch the console, give the status or text the guest really answers with, or a longer --timeout',
  });
  const r = run.rounds[0]![0]!;
  return { status: r.status!, body, seconds: r.readyMs / 1000, tries: r.tries };
}

function consoleTail(log: string): string {
  if (!log) return '';
  return `\n--- guest console (last 40 lines) ---\n${log.split('\n').slice(-40).join('\n')}`;
}
