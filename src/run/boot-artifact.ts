import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, cancellationError, throwIfCancelled } from '../lib/errors.js';
import { makeScratchDir } from '../lib/fs.js';
import { describeHttpExpectation, type HttpExpectation } from '../core/probe/expectation.js';
import type { Reporter } from '../lib/reporter.js';
import { servePxeBundle, type PxeHttpRequest, type PxeHttpServer } from './pxe-http.js';
import { bootDisk, defaultDevices, findBootArtifact, freePort, startVm, waitForHttp, type BootArtifact, type BootDevices, type RunningVm } from './qemu.js';

/** 127.0.0.1:host → the guest's port; host 0 asks for any free port. */
export interface PortForward {
  host: number;
  guest: number;
}

export interface BootRequest {
  /** A disk file, an .ova, or an `aim build` output directory (a PXE bundle: the one with boot.ipxe). */
  path: string;
  forwards: PortForward[];
  memoryMiB: number;
  /** HTTP path to GET through the first forward, tried until the answer meets `expect`; then the VM is stopped. */
  probe?: string;
  /** What the probe's answer must be; default any 2xx. */
  expect?: HttpExpectation;
  /** With a probe: how long after QEMU's start the guest may take to answer as expected. */
  timeoutMs: number;
  accel: 'tcg' | 'kvm';
  /** Default: vmware for an OVA, else virtio. */
  devices?: BootDevices;
  firmware: 'uefi' | 'bios';
  tbSizeMiB: number;
  /** PXE bundles: fetched by TFTP from QEMU's server (default), or by HTTP from a server aim runs for the boot. */
  pxeVia?: 'tftp' | 'http';
  /** Without a probe: the guest console on this process's terminal rather than in a scratch file. */
  consoleOnStdio: boolean;
  /** Stops the VM (Ctrl-C). */
  signal?: AbortSignal;
}

export interface BootResult {
  artifact: BootArtifact;
  devices: BootDevices;
  memoryMiB: number;
  forwards: PortForward[];
  /** With a probe: the guest's answer, and how long after QEMU started it came. */
  probe?: { url: string; expectation: string; status: number; bytes: number; sha256: string; seconds: number; tries: number; title?: string };
  /** Without a probe: how QEMU ended. */
  exitCode?: number;
  /** PXE by HTTP: what the guest fetched from aim's boot server. */
  pxeHttp?: { port: number; requests: PxeHttpRequest[] };
}

/** "8080:80" → { host: 8080, guest: 80 }. */
export function parseForward(text: string): PortForward {
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text);
  const host = Number(m?.[1]);
  const guest = Number(m?.[2]);
  if (!m || host > 65535 || guest < 1 || guest > 65535) throw new ConfigError(`--forward ${text}: expected HOST:GUEST ports, e.g. 8080:80 (host 0 = any free port)`);
  return { host, guest };
}

function describe(a: BootArtifact): string {
  if (a.kind === 'pxe') return `${join(a.dir, a.bootfile)} by PXE (${a.httpPort ? `HTTP from 127.0.0.1:${a.httpPort}` : 'TFTP'})`;
  return `${a.path} (${a.kind === 'ova' ? 'OVA' : a.format})`;
}

/**
 * Boots an artifact in QEMU in a private scratch directory. With a probe it waits until the
 * guest's HTTP answer meets the expectation (the readiness rules of core/probe) and stops the VM; without one it runs until the guest powers off. The VM and the
 * scratch directory are gone when this returns or throws, Ctrl-C (the signal) included.
 */
export async function bootArtifact(request: BootRequest, reporter: Reporter): Promise<BootResult> {
  if (request.probe !== undefined && request.forwards.length === 0) throw new ConfigError('--probe needs a --forward to reach the guest (e.g. --forward 0:80)');
  if (request.probe !== undefined && !request.probe.startsWith('/')) throw new ConfigError(`--probe ${request.probe}: give the HTTP path, starting with /`);
  if (request.expect && request.probe === undefined) throw new ConfigError('--expect-status and --expect-body need a --probe');
  const { signal } = request;
  const found = await findBootArtifact(request.path);
  if (request.pxeVia === 'http' && found.kind !== 'pxe') throw new ConfigError('--pxe-via http is for PXE bundles (the aim build --format pxe directory)');
  const devices = request.devices ?? defaultDevices(found);
  const dir = await makeScratchDir('boot');
  let artifact = found;
  let forwards: PortForward[] = [];
  let started = Date.now();
  let vm: RunningVm;
  let http: PxeHttpServer | undefined;
  const cleanUp = async () => {
    await http?.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // the boot server first: a free port picked for a forward is closed again until QEMU takes it
    if (found.kind === 'pxe' && request.pxeVia === 'http') {
      http = await servePxeBundle(found.dir);
      artifact = { ...found, httpPort: http.port };
    }
    forwards = await Promise.all(request.forwards.map(async (f) => ({ host: f.host === 0 ? await freePort() : f.host, guest: f.guest })));
    const disk = await bootDisk(artifact, dir, signal);
    started = Date.now();
    vm = await startVm({
      artifact: disk,
      devices,
      firmware: request.firmware,
      dir,
      memoryMiB: request.memoryMiB,
      forwards,
      accel: request.accel,
      tbSizeMiB: request.tbSizeMiB,
      console: request.probe === undefined && request.consoleOnStdio ? 'stdio' : 'file',
      ...(signal ? { signal } : {}),
    });
  } catch (e) {
    await cleanUp();
    throw signal?.aborted ? cancellationError(signal) : e;
  }
  const stopOnAbort = () => void vm.stop().catch(() => undefined);
  signal?.addEventListener('abort', stopOnAbort);
  // Ctrl-C while the disk was extracted or QEMU started: the listener came too late for it
  if (signal?.aborted) stopOnAbort();
  try {
    const result: BootResult = { artifact, devices, memoryMiB: request.memoryMiB, forwards, ...(http ? { pxeHttp: { port: http.port, requests: http.requests } } : {}) };
    const ports = forwards.map((f) => `127.0.0.1:${f.host} → guest ${f.guest}`).join(', ') || 'no forwards';
    reporter.emit({ type: 'stage', stage: 'boot', status: 'start', detail: `${describe(artifact)} (${devices} devices, ${request.firmware}, ${request.memoryMiB} MiB, ${request.accel}); ${ports}` });
    if (request.probe === undefined) {
      const res = await vm.process;
      throwIfCancelled(signal);
      result.exitCode = res.exitCode ?? undefined;
      return result;
    }
    const answer = await waitForHttp(vm, forwards[0]!.host, request.probe, request.timeoutMs, started, request.expect, signal);
    const title = /<title>([^<]*)<\/title>/i.exec(answer.body.toString('utf8'))?.[1];
    result.probe = {
      url: `http://127.0.0.1:${forwards[0]!.host}${request.probe}`,
      expectation: describeHttpExpectation(request.expect),
      status: answer.status,
      bytes: answer.body.length,
      sha256: createHash('sha256').update(answer.body).digest('hex'),
      seconds: answer.seconds,
      tries: answer.tries,
      ...(title === undefined ? {} : { title }),
    };
    return result;
  } catch (e) {
    // stopped by the signal, whatever the probe or QEMU then failed with
    throw signal?.aborted ? cancellationError(signal) : e;
  } finally {
    signal?.removeEventListener('abort', stopOnAbort);
    try {
      await vm.stop();
    } finally {
      await cleanUp();
    }
  }
}
