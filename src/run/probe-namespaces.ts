/**
 * Namespaces in which a booted image is probed as its profile probed it in the sandbox: QEMU runs
 * in their network namespace and forwards each of the guest's ports from that namespace's
 * 127.0.0.1, so a probe that reached `127.0.0.1:6379` in the profile sandbox reaches the guest's
 * service the same way. Exec probes run inside the image's own tree (chroot, like the sandbox's),
 * with its own tools (`redis-cli PING`); HTTP probes are made by a host `node` in the namespace.
 *
 * The namespaces are held by the profile sandbox's supervisor (core/profile/sandbox.ts) running a
 * host `sleep`: it mounts /proc, /dev, /tmp and /run under the tree and brings loopback up. The
 * chain dies with aim (pdeathsig); stop() kills the supervisor, and the kernel the rest.
 */
import { mkdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AimError, ExitCode, PermissionError } from '../lib/errors.js';
import { requireTool, spawnTool } from '../lib/exec.js';
import type { ProbeContext } from '../core/profile/probes.js';
import { waitUntil } from '../core/profile/processes.js';
import { prepareRoot, readMarker, requireSandboxTools, SUPERVISOR } from '../core/profile/sandbox.js';

export interface ProbeNamespaces {
  /** Host pid of the supervisor: QEMU joins its network namespace, probes all its namespaces. */
  pid: number;
  /** The image tree probes run in (realpath). */
  root: string;
  context(timeoutMs: number): ProbeContext;
  stop(): Promise<void>;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SETUP_TIMEOUT_MS = 15_000;

/** Starts the namespaces over `root` (an exported image tree, or an empty directory when no probe runs inside the image). */
export async function startProbeNamespaces(root: string, workDir: string, signal?: AbortSignal): Promise<ProbeNamespaces> {
  if (process.getuid?.() !== 0) {
    throw new PermissionError('qualification probes the booted image from namespaces with the image tree mounted, which needs root', { hint: 'run aim qualify as root (sudo)' });
  }
  requireSandboxTools();
  const real = await prepareRoot(root);
  await mkdir(workDir, { recursive: true });
  const marker = join(await realpath(workDir), 'probe-ns.pid');
  await rm(marker, { force: true });
  const chain = [
    '--pdeathsig', 'KILL', '--',
    requireTool('unshare'), '--mount', '--pid', '--uts', '--net', '--ipc', '--fork', '--kill-child', '--propagation', 'private', '--',
    requireTool('sh'), '-c', SUPERVISOR, 'aim-probe-ns', real, marker, 'aim-qualify', '',
    requireTool('sleep', 'hold the probe namespaces'), '2147483647',
  ];
  const { child } = await spawnTool('setpriv', chain, { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', env: { PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin:/sbin:/bin` } });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  let done = false;
  const ended = child.then(() => (done = true)).catch(() => (done = true));
  const kill = async () => {
    if (!done && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await ended;
  };
  let marks: Awaited<ReturnType<typeof readMarker>>;
  const up = await waitUntil(async () => (marks = await readMarker(marker)) !== undefined || done || signal?.aborted === true, SETUP_TIMEOUT_MS, 50);
  if (!up || !marks) {
    await kill();
    signal?.throwIfAborted();
    throw new AimError('E_QUALIFY_SETUP', `the probe namespaces did not start${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' ')}` : ''}`, ExitCode.internal);
  }
  const pid = marks.initPid;
  const env = [`PATH=${DEFAULT_PATH}`, 'HOME=/root'];
  return {
    pid,
    root: real,
    context: (timeoutMs) => ({ initPid: pid, root: real, workDir, env, timeoutMs }),
    async stop() {
      // pid 1 of the namespace: the kernel kills everything in it
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
      if (!(await waitUntil(() => done, 10_000, 50))) await kill();
      await ended;
    },
  };
}
