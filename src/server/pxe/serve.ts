import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PxeAssignment } from '../../core/model/pxe.js';
import type { Repository } from '../../core/repository/repository.js';
import { AimError, ConfigError, ExitCode, MissingToolError } from '../../lib/errors.js';
import { requireTool } from '../../lib/exec.js';
import type { Reporter } from '../../lib/reporter.js';
import { ArtifactCache } from './artifact-cache.js';
import { BootPlans, bootIdOf } from './boot-plans.js';
import { hostsFileText, IPXE_BOOT_FILES, ipv4Network, isIpv4, parseDhcpRange, type DnsmasqSettings, type Ipv4Network } from './dnsmasq-config.js';
import { dnsmasqFiles, startDnsmasq, type DnsmasqChild } from './dnsmasq.js';
import { BootEventRecorder, stamp, type ServeEvent, type ServeEventSink } from './events.js';
import { createBootHttpServer, DEFAULT_LIMITS, type HttpLimits } from './http-server.js';
import { SCRIPT_PATH } from './request-target.js';

export const DEFAULT_PORT = 8080;

export interface ServeOptions {
  repo: Repository;
  /** host:port to listen on; default 127.0.0.1:8080, or the interface's address with --interface. */
  listen?: string;
  interface?: string;
  dhcp?: 'proxy' | 'range';
  /** range mode: "A,B". */
  dhcpRange?: string;
  /** TFTP of the iPXE binaries; default on with DHCP. */
  tftp?: boolean;
  /** Where undionly.kpxe and ipxe.efi come from (Debian's, or ones built with aim pxe ipxe build). */
  ipxeDir: string;
  cacheDir: string;
  limits?: Partial<HttpLimits>;
  emit: ServeEventSink;
  reporter: Reporter;
  /** Stops the server (Ctrl-C, SIGTERM). */
  signal: AbortSignal;
  /** How often assignments are checked for changes (ms). */
  pollMs?: number;
  /** Called with a function that rereads assignments now (the command wires SIGHUP to it). */
  onReloadHook?: (reload: () => void) => void;
}

export interface ServeSummary {
  http: string;
  bootUrl: string;
  requests: number;
  bytes: number;
  reason: string;
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || (m[1] !== undefined && !isIpv4(m[1])) || port > 65535) throw new ConfigError(`--listen ${text}: not ADDRESS:PORT (an IPv4 address)`, { hint: 'e.g. --listen 127.0.0.1:8080, or --listen 0.0.0.0:8080 for every interface' });
  return { host: m[1] ?? '127.0.0.1', port };
}

/** The IPv4 network of an interface of this machine (of its network namespace). */
export function interfaceNetwork(name: string): Ipv4Network {
  const all = networkInterfaces();
  const addr = all[name]?.find((a) => a.family === 'IPv4');
  if (!all[name]) throw new ConfigError(`--interface ${name}: no such network interface (there are: ${Object.keys(all).join(', ')})`, { hint: 'give the interface on the machines\' network, e.g. --interface eth1' });
  if (!addr) throw new ConfigError(`--interface ${name} has no IPv4 address`, { hint: `give it one (ip addr add 192.0.2.10/24 dev ${name}) or pick another interface` });
  return ipv4Network(addr.address, addr.netmask);
}

const digest = (as: readonly PxeAssignment[]) => createHash('sha256').update(JSON.stringify(as.map((a) => [a.selector.key, a.imageId, a.boot, a.kernelArgs, a.channel ?? null]))).digest('hex');

/**
 * `aim pxe serve`: the boot server for one repository until `signal` aborts. HTTP (the iPXE
 * scripts, kernels and initrds of assigned images), and with an interface dnsmasq as a child for
 * proxyDHCP or DHCP and TFTP. Assignments are reread every `pollMs` (and on demand): dnsmasq's
 * hosts file is rewritten and reread (SIGHUP), new images are prepared in the background, and
 * the cached files of images no longer assigned are removed. Events go to `emit`.
 */
export async function servePxe(o: ServeOptions): Promise<ServeSummary> {
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...o.limits };
  const tftp = o.tftp ?? o.dhcp !== undefined;
  if ((o.dhcp || tftp) && !o.interface) throw new ConfigError(`${o.dhcp ? '--dhcp' : '--tftp'} needs --interface: the network the machines boot on`, { hint: 'e.g. --interface eth1 --dhcp proxy (next to the site\'s DHCP server)' });
  if (o.dhcpRange !== undefined && o.dhcp !== 'range') throw new ConfigError('--dhcp-range goes with --dhcp range', { hint: '--dhcp range --dhcp-range 192.0.2.100,192.0.2.150' });
  if (o.dhcp === 'range' && o.dhcpRange === undefined) throw new ConfigError('--dhcp range needs --dhcp-range A,B: the addresses to hand out');
  const net = o.interface ? interfaceNetwork(o.interface) : undefined;
  const listen = parseListen(o.listen ?? `${net?.address ?? '127.0.0.1'}:${DEFAULT_PORT}`);
  if (net && listen.host.startsWith('127.')) throw new ConfigError(`--listen ${o.listen}: machines on ${o.interface} cannot reach a loopback address`, { hint: `leave --listen out (then ${net.address}:${DEFAULT_PORT}) or give ${net.address}:PORT` });
  const range = o.dhcp === 'range' && net ? parseDhcpRange(o.dhcpRange!, net) : undefined;
  if (o.dhcp || tftp) {
    requireTool('dnsmasq');
    for (const f of Object.values(IPXE_BOOT_FILES)) if (tftp && !existsSync(join(o.ipxeDir, f))) throw new MissingToolError(join(o.ipxeDir, f), 'hand PXE clients iPXE by TFTP', 'ipxe');
  }

  const cache = new ArtifactCache(o.cacheDir);
  await cache.open();
  const plans = new BootPlans(o.repo, o.reporter);
  const recorder = new BootEventRecorder(o.repo.catalog.pxe, (e) => o.emit(stamp({ event: 'warning', code: 'W_PXE_EVENTS', message: `boot events not recorded: ${(e as Error).message}` })));
  const stopping = new AbortController();
  // every response in flight listens for the stop: as many listeners as connections, not a leak
  setMaxListeners(limits.maxConnections + 16, stopping.signal);
  const totals = { requests: 0, bytes: 0 };
  // boots being prepared in the background; the stop waits for them, so no event follows "stopped"
  const preparing = new Map<string, Promise<void>>();
  const prepare = (a: PxeAssignment) => {
    const bootId = bootIdOf(a);
    if (preparing.has(bootId) || stopping.signal.aborted) return;
    preparing.set(bootId, prepareBoot(a, bootId).finally(() => preparing.delete(bootId)));
  };
  const prepareBoot = async (a: PxeAssignment, bootId: string) => {
    const base = { bootId, imageId: a.imageId, imageRef: a.imageRef };
    let planned;
    try {
      planned = await plans.get(a);
    } catch (e) {
      if (!stopping.signal.aborted) o.emit(stamp({ event: 'prepare', ...base, artifact: 'initrd', status: 'failed', reason: (e as Error).message }));
      return;
    }
    for (const artifact of ['kernel', 'initrd'] as const) {
      const f = planned[artifact];
      if (await cache.lookup(f.key)) continue;
      if (stopping.signal.aborted) return;
      const t0 = Date.now();
      o.emit(stamp({ event: 'prepare', ...base, artifact, status: 'start' }));
      try {
        const done = await cache.ensure(f.key, f.produce, artifact === 'kernel' ? planned.kernel.size : undefined);
        if (!stopping.signal.aborted) o.emit(stamp({ event: 'prepare', ...base, artifact, status: 'done', bytes: done.size, seconds: (Date.now() - t0) / 1000 }));
      } catch (e) {
        if (!stopping.signal.aborted) o.emit(stamp({ event: 'prepare', ...base, artifact, status: 'failed', reason: (e as Error).message }));
      }
    }
  };

  const advertised = listen.host === '0.0.0.0' ? (net?.address ?? '127.0.0.1') : listen.host;
  let serverUrl = '';
  const server = createBootHttpServer({ repo: o.repo, plans, cache, recorder, emit: o.emit, prepare, get server() { return serverUrl; }, limits, signal: stopping.signal, totals });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: Error & { code?: string }) =>
      reject(e.code === 'EADDRINUSE' ? new ConfigError(`--listen ${listen.host}:${listen.port}: the address is in use`, { hint: 'give another port with --listen ADDRESS:PORT' }) : e.code === 'EADDRNOTAVAIL' ? new ConfigError(`--listen ${listen.host}: not an address of this machine`) : e),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  serverUrl = `http://${advertised}:${port}`;
  const bootUrl = `${serverUrl}${SCRIPT_PATH}`;

  let dnsmasq: DnsmasqChild | undefined;
  let runDir: string | undefined;
  let seen = '';
  let checked = false;
  const closeAll = async () => {
    stopping.abort();
    server.close();
    server.closeAllConnections();
    await cache.close();
    await Promise.allSettled(preparing.values());
    await dnsmasq?.stop();
    await recorder.close();
    if (runDir) await rm(runDir, { recursive: true, force: true });
  };
  try {
    const assignments = await o.repo.catalog.pxe.assignments();
    seen = digest(assignments);
    if (o.dhcp || tftp) {
      runDir = await mkdtemp(join(tmpdir(), 'aim-pxe-serve-'));
      // dnsmasq drops root for nobody: its files must be readable by anyone
      await chmod(runDir, 0o755);
      const files = dnsmasqFiles(runDir);
      await mkdir(files.tftpRoot, { mode: 0o755 });
      if (tftp) for (const f of Object.values(IPXE_BOOT_FILES)) await copyFile(join(o.ipxeDir, f), join(files.tftpRoot, f)).then(() => chmod(join(files.tftpRoot, f), 0o644));
      const settings: DnsmasqSettings = { interface: o.interface!, ...(o.dhcp ? { dhcp: o.dhcp } : {}), network: net!, ...(range ? { range } : {}), bootUrl, tftp, ...files };
      const sizes = new Map<string, number>();
      for (const f of Object.values(IPXE_BOOT_FILES)) if (tftp) sizes.set(f, (await stat(join(files.tftpRoot, f))).size);
      dnsmasq = await startDnsmasq(settings, files.confFile, hostsFileText(assignments), o.emit, (t) =>
        recorder.record({ at: new Date().toISOString(), address: t.address, kind: 'tftp', path: `/${t.file}`, status: 0, bytes: t.complete ? (sizes.get(t.file) ?? 0) : 0, complete: t.complete, ms: 0 }),
      );
    }
    o.emit(stamp({
      event: 'listening', http: serverUrl, bootUrl, ...(o.interface ? { interface: o.interface } : {}), ...(o.dhcp ? { dhcp: o.dhcp } : {}), tftp, cacheDir: o.cacheDir,
      limits: { ...limits },
    }));
    for (const a of assignments) prepare(a);

    const check = async (force: boolean) => {
      const now = await o.repo.catalog.pxe.assignments();
      const d = digest(now);
      const changed = d !== seen;
      if (!changed && !force && checked) return;
      checked = true;
      seen = d;
      if (changed) await dnsmasq?.reload(hostsFileText(now));
      const ids = new Set(now.map(bootIdOf));
      plans.retain(ids);
      for (const a of now) prepare(a);
      // cached files of images no longer assigned go, once every assigned one is planned
      let removed: string[] | undefined;
      const planned = await Promise.allSettled(now.map((a) => plans.get(a)));
      if (planned.every((p) => p.status === 'fulfilled')) {
        const keep = new Set(planned.flatMap((p) => (p.status === 'fulfilled' ? [p.value.kernel.key, p.value.initrd.key] : [])));
        removed = await cache.prune(keep);
      }
      if (changed || force || (removed?.length ?? 0) > 0) o.emit(stamp({ event: 'assignments', count: now.length, bootIds: ids.size, changed, ...(removed ? { pruned: removed.length } : {}) }));
    };
    let checking: Promise<void> = Promise.resolve();
    const schedule = (force: boolean) => {
      checking = checking.then(() => check(force)).catch((e: unknown) => o.emit(stamp({ event: 'warning', code: 'W_PXE_RELOAD', message: `assignments not reread: ${(e as Error).message}` })));
    };
    o.onReloadHook?.(() => schedule(true));
    const poll = setInterval(() => schedule(false), o.pollMs ?? 1000);
    try {
      const dnsmasqDied = dnsmasq?.exited.then((r) => r) ?? new Promise<never>(() => {});
      const stopped = new Promise<'signal'>((resolve) => {
        if (o.signal.aborted) resolve('signal');
        o.signal.addEventListener('abort', () => resolve('signal'), { once: true });
      });
      const why = await Promise.race([stopped, dnsmasqDied]);
      if (why !== 'signal') {
        o.emit(stamp({ event: 'dnsmasq', message: 'exited', exitCode: why.exitCode ?? null, signal: why.signal ?? null }));
        throw new AimError('E_DNSMASQ_EXITED', `dnsmasq exited while serving (${why.signal ?? `exit ${why.exitCode}`}); the boot server stopped`, ExitCode.toolFailed, { hint: 'see the dnsmasq events before this one; start aim pxe serve again' });
      }
    } finally {
      clearInterval(poll);
      await checking;
    }
  } finally {
    await closeAll();
  }
  const summary: ServeSummary = { http: serverUrl, bootUrl, requests: totals.requests, bytes: totals.bytes, reason: o.signal.reason instanceof Error ? o.signal.reason.message : 'stopped' };
  o.emit(stamp({ event: 'stopped', reason: summary.reason, requests: summary.requests, bytes: summary.bytes }));
  return summary;
}

export type { ServeEvent };
