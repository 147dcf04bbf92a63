import type * as Execa from 'execa';
import type { Options, ResultPromise } from 'execa';
import { MissingToolError, ToolFailedError, cancellationError, throwIfCancelled } from './errors.js';
import { debugLog } from './log.js';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const debug = debugLog('exec');

let execaModule: Promise<typeof Execa> | undefined;
/**
 * execa, loaded on its first use: most commands start no tool, and loading execa's hundred-odd
 * modules costs every one of them about 0.2 s of CPU.
 */
export function loadExeca(): Promise<typeof Execa> {
  execaModule ??= import('execa');
  return execaModule;
}

/** The Debian package and purpose for each external tool aim runs, for "not found" errors. */
export const TOOLS: Record<string, { pkg: string; purpose: string }> = {
  mmdebstrap: { pkg: 'mmdebstrap', purpose: 'build gold images from Debian packages' },
  xz: { pkg: 'xz-utils', purpose: 'read .tar.xz archives' },
  getfattr: { pkg: 'attr', purpose: 'read extended attributes (file capabilities) of directory sources' },
  'qemu-img': { pkg: 'qemu-utils', purpose: 'read qcow2 disk images and write qcow2/VMDK artifacts' },
  sync: { pkg: 'coreutils', purpose: 'make written blobs durable' },
  bzip2: { pkg: 'bzip2', purpose: 'read .tar.bz2 archives' },
  strace: { pkg: 'strace', purpose: 'trace what a workload uses (profiling)' },
  unshare: { pkg: 'util-linux', purpose: 'isolate profiled workloads in namespaces' },
  nsenter: { pkg: 'util-linux', purpose: 'probe workloads inside their namespaces' },
  setpriv: { pkg: 'util-linux', purpose: 'tie sandboxed workloads to their parent' },
  mount: { pkg: 'mount', purpose: 'mount /proc, /sys, /dev inside the sandbox, and image trees as overlays' },
  umount: { pkg: 'mount', purpose: 'unmount the overlays workloads run on' },
  ip: { pkg: 'iproute2', purpose: 'bring up loopback inside the sandbox' },
  chroot: { pkg: 'coreutils', purpose: 'run workloads inside an image root' },
  tar: { pkg: 'tar', purpose: 'extract images into directories' },
  ostree: { pkg: 'ostree', purpose: 'run the ostree comparison benchmark' },
  'apt-get': { pkg: 'apt', purpose: 'download Debian\'s kernel package (aim core kernel)' },
  'apt-cache': { pkg: 'apt', purpose: 'find Debian\'s current kernel package (aim core kernel)' },
  'dpkg-deb': { pkg: 'dpkg', purpose: 'unpack Debian\'s kernel package (aim core kernel)' },
  depmod: { pkg: 'kmod', purpose: 'index kernel modules (aim core kernel)' },
  zstd: { pkg: 'zstd', purpose: 'compress initramfs images and read .tar.zst archives' },
  busybox: { pkg: 'busybox-static', purpose: 'give bootable images their minimal init' },
  mke2fs: { pkg: 'e2fsprogs', purpose: 'build ext4 root filesystems' },
  dumpe2fs: { pkg: 'e2fsprogs', purpose: 'list the inodes of ext4 images' },
  debugfs: { pkg: 'e2fsprogs', purpose: 'fix inode times so ext4 images are reproducible' },
  sfdisk: { pkg: 'fdisk', purpose: 'write GPT partition tables' },
  'mkfs.vfat': { pkg: 'dosfstools', purpose: 'make EFI system partitions' },
  mmd: { pkg: 'mtools', purpose: 'fill EFI system partitions without mounting' },
  mcopy: { pkg: 'mtools', purpose: 'fill EFI system partitions without mounting' },
  'qemu-system-x86_64': { pkg: 'qemu-system-x86', purpose: 'boot artifacts in QEMU' },
  skopeo: { pkg: 'skopeo', purpose: 'check and copy OCI image layouts' },
  umoci: { pkg: 'umoci', purpose: 'unpack OCI image layouts' },
  'ipxe.efi': { pkg: 'ipxe', purpose: 'give PXE bundles their iPXE binaries (ipxe.efi, undionly.kpxe)' },
  make: { pkg: 'make', purpose: 'build iPXE from source (--ipxe-src)' },
  dnsmasq: { pkg: 'dnsmasq-base', purpose: 'answer PXE clients by proxyDHCP or DHCP and hand them iPXE by TFTP (aim pxe serve --dhcp, --tftp)' },
};

const found = new Map<string, string | undefined>();

/** Looks a tool up on PATH (and the sbin directories), cached. */
export function whichTool(tool: string): string | undefined {
  if (found.has(tool)) return found.get(tool);
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  let hit: string | undefined;
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      hit = candidate;
      break;
    } catch {
      // not here
    }
  }
  found.set(tool, hit);
  return hit;
}

/** Fails with a MissingToolError naming the Debian package when the tool is absent. */
export function requireTool(tool: string, purpose?: string): string {
  const path = whichTool(tool);
  if (!path) {
    const info = TOOLS[tool] ?? { pkg: tool, purpose: 'run this command' };
    throw new MissingToolError(tool, purpose ?? info.purpose, info.pkg);
  }
  return path;
}

/**
 * Runs an external tool with an argument array (never a shell string). Resolves to the execa
 * result; a non-zero exit becomes a ToolFailedError carrying the tail of stderr. With
 * `cancelSignal`, aborting kills the tool (SIGTERM, SIGKILL 5 s later) and rejects, once it has
 * exited, with the signal's cancellation error (lib/errors cancellationError).
 */
export async function runTool(
  tool: string,
  args: readonly string[],
  options: Options = {},
): Promise<{ stdout: string; stdoutBytes: Buffer; stderr: string; exitCode: number }> {
  const bin = requireTool(tool);
  throwIfCancelled(options.cancelSignal);
  debug('%s %o', tool, args);
  const { execa } = await loadExeca();
  const result = await execa(bin, args, { reject: false, stripFinalNewline: false, ...options });
  if (result.isCanceled && options.cancelSignal) throw cancellationError(options.cancelSignal);
  const text = (v: unknown): string => (typeof v === 'string' ? v : v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '');
  const stdoutBytes = result.stdout instanceof Uint8Array ? Buffer.from(result.stdout) : Buffer.from(text(result.stdout));
  const stderr = text(result.stderr);
  if (result.failed || result.exitCode !== 0) {
    throw new ToolFailedError([tool, ...args], result.exitCode, stderr || String(result.message ?? ''));
  }
  return { stdout: text(result.stdout), stdoutBytes, stderr, exitCode: result.exitCode ?? 0 };
}

export interface SpawnOptions {
  stdin?: 'pipe' | 'ignore' | 'inherit';
  stdout?: 'pipe' | 'ignore' | 'inherit';
  stderr?: 'pipe' | 'ignore' | 'inherit';
  input?: string | Uint8Array;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kills the tool (SIGTERM) after this many milliseconds. */
  timeout?: number;
  /** Open file descriptors the tool gets as its fds 3, 4, … */
  fds?: number[];
  /** Kills the tool when it aborts; the result then has `isCanceled` (see runTool). */
  cancelSignal?: AbortSignal;
}

export type StreamingProcess = ResultPromise<{ reject: false; buffer: false }>;

/**
 * Starts a tool without waiting, for streaming its stdin/stdout (decompressors, mmdebstrap, tar,
 * QEMU). The subprocess comes wrapped (`{ child }`): it is itself a promise of the result, which
 * an async function would otherwise wait for. Streams set to 'ignore' or 'inherit' are null at run
 * time; nothing is buffered, so read what you need.
 */
export async function spawnTool(tool: string, args: readonly string[], options: SpawnOptions = {}): Promise<{ child: StreamingProcess }> {
  const bin = requireTool(tool);
  throwIfCancelled(options.cancelSignal);
  const { execa } = await loadExeca();
  throwIfCancelled(options.cancelSignal);
  debug('spawn %s %o', tool, args);
  const { fds, ...rest } = options;
  const stdio = fds?.length ? { stdio: [rest.stdin ?? 'pipe', rest.stdout ?? 'pipe', rest.stderr ?? 'pipe', ...fds], stdin: undefined, stdout: undefined, stderr: undefined } : {};
  return { child: execa(bin, args, { ...rest, ...stdio, reject: false, buffer: false } as Options) as unknown as StreamingProcess };
}
