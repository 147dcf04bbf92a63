/**
 * Qualification: an image's artifact booted in QEMU and its profile's probes run against it with
 * their expectations, under the readiness rules of core/probe (each probe tried with backoff until
 * it meets its expectation, within the readiness timeout counted from QEMU's start). The result and
 * its timings are recorded in the catalog, passed or failed; a failure is E_QUALIFY_FAILED with
 * the record as its result.
 *
 * The probes reach the guest as they reached the workload in the profile sandbox: QEMU runs in a
 * network namespace of its own and forwards each guest port from that namespace's 127.0.0.1
 * (probe-namespaces.ts). The ports are those the profile saw the workload listen on, its
 * readiness port and the ports of its HTTP probes, and any --port.
 *
 * Work is split so a rollout can prepare (build the artifact, export the tree the probes run in)
 * before it promotes, and boot after: prepareQualification, then runQualification.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AimError, ConfigError, ExitCode, NotFoundError, cancellationError, isAimError } from '../lib/errors.js';
import { makeScratchDir } from '../lib/fs.js';
import type { Reporter } from '../lib/reporter.js';
import { SERVICE_EXITED } from '../core/bootable/init-scripts.js';
import { buildImage } from '../core/build/build-image.js';
import type { BuildFormat } from '../core/build/types.js';
import { exportImage } from '../core/export/export-image.js';
import { currentActor } from '../core/lifecycle/channels.js';
import { qualifyArtifactFor } from '../core/lifecycle/qualify-artifact.js';
import type { QualificationRecord, QualifiedProbe } from '../core/model/channel.js';
import { ProbeFailedError, probeWhenReady, type Gate } from '../core/probe/readiness.js';
import { parseReadyLog } from '../core/probe/line-watch.js';
import { probeExpectation, probeLabel, probePort, runExecProbeUntraced, runHttpProbe, validateProbe, type ProbeAttempt, type ProbeResult, type ProbeSpec } from '../core/profile/probes.js';
import { resolveImage } from '../core/query/resolve.js';
import type { Repository } from '../core/repository/repository.js';
import type { ProfileRecord } from '../core/repository/types.js';
import type { SlimReport } from '../core/slim/compose.js';
import { readEntrypoint } from '../core/slim/entrypoint.js';
import { startProbeNamespaces } from './probe-namespaces.js';
import { bootDisk, defaultDevices, findBootArtifact, startVm, type BootDevices, type RunningVm } from './qemu.js';

/** The artifact formats qualification boots. */
export const QUALIFY_FORMATS = ['raw', 'qcow2', 'vmdk', 'ova', 'pxe'] as const satisfies readonly BuildFormat[];
export type QualifyFormat = (typeof QUALIFY_FORMATS)[number];

export interface QualifyRequest {
  image: string;
  /** Default: the profile the slim image was made with, else the one profile recorded on the image. */
  profile?: string;
  /** Default: what the channel ships (core/lifecycle/qualify-artifact.ts): pxe when a PXE assignment follows it, else raw. */
  format?: QualifyFormat;
  /** The channel the image is qualified for (a rollout's); default: the channels that hold it. */
  channel?: string;
  firmware: 'uefi' | 'bios';
  /** Kernel core image; default as aim build. */
  kernel?: string;
  memoryMiB: number;
  /** From QEMU's start until every probe must have met its expectation. */
  readyTimeoutMs: number;
  /** Guest ports to forward beyond those the profile names. */
  ports: number[];
  /** Service exits (aim's init restarts it) tolerated before the qualification fails at once. */
  maxRestarts: number;
  accel: 'tcg' | 'kvm';
  tbSizeMiB: number;
  signal?: AbortSignal;
}

/** What a qualification will do, read from the catalog. */
export interface QualificationPlan {
  imageId: string;
  imageRef: string;
  profile: string;
  probes: ProbeSpec[];
  ports: number[];
  readyLog?: string;
  probeTimeoutMs: number;
  /** When the image records none (a gold image): the profile's command, through /bin/sh -c. */
  entrypoint?: string[];
}

const isPort = (p: number) => Number.isInteger(p) && p > 0 && p < 65536;

/** Every probe of the profile's runs, each once, in order; the ports to forward; readiness settings. */
export function planFromProfile(profile: ProfileRecord, extraPorts: readonly number[]): Pick<QualificationPlan, 'probes' | 'ports' | 'readyLog' | 'probeTimeoutMs'> {
  const seen = new Set<string>();
  const probes: ProbeSpec[] = [];
  for (const run of profile.runs) {
    for (const p of run.probes) {
      const key = JSON.stringify(p);
      if (seen.has(key)) continue;
      seen.add(key);
      validateProbe(p);
      probes.push(p);
    }
  }
  if (probes.length === 0) throw new ConfigError(`profile ${profile.name} has no probes: nothing to qualify against`, { hint: `record a run with probes: aim profile run … --name ${profile.name} --probe … (or --probe-exec …)` });
  for (const p of extraPorts) if (!isPort(p)) throw new ConfigError(`--port ${p}: not a TCP port`);
  const ports = new Set<number>(extraPorts);
  for (const run of profile.runs) {
    for (const p of run.ports ?? []) ports.add(p);
    if (run.readyPort !== undefined) ports.add(run.readyPort);
  }
  for (const p of probes) if (p.kind === 'http') ports.add(probePort(p.url));
  if (ports.size === 0) {
    throw new ConfigError(`no guest port to probe: profile ${profile.name} records none (it was made before aim recorded the ports a workload listens on)`, {
      hint: 'name the ports the service listens on: --port 6379 (repeatable), or record the profile again',
    });
  }
  const readyLog = profile.runs.map((r) => r.readyLog).filter((l): l is string => l !== undefined).at(-1);
  if (readyLog !== undefined) parseReadyLog(readyLog, `profile ${profile.name}'s ready-log`);
  const probeTimeoutMs = Math.max(...profile.runs.map((r) => r.probeTimeoutMs ?? 10_000));
  return { probes, ports: [...ports].sort((a, b) => a - b), ...(readyLog !== undefined ? { readyLog } : {}), probeTimeoutMs };
}

/** The image, its profile, probes and ports. */
export async function planQualification(repo: Repository, req: Pick<QualifyRequest, 'image' | 'profile' | 'ports'>): Promise<QualificationPlan> {
  const imageId = await resolveImage(repo, req.image);
  let name = req.profile;
  if (name === undefined) {
    const report = (await repo.catalog.getSlimReport(imageId)) as Partial<SlimReport> | undefined;
    const own = (await repo.catalog.listProfiles()).filter((p) => p.imageId === imageId);
    name = typeof report?.profile === 'string' ? report.profile : own.length === 1 ? own[0]!.name : undefined;
    if (name === undefined) {
      throw new ConfigError(`${req.image} records no profile to qualify it with${own.length > 1 ? ` (${own.length} profiles were recorded on it)` : ''}`, { hint: 'name one: --profile NAME (aim profile list)' });
    }
  }
  const profile = await repo.catalog.getProfile(name);
  if (!profile) throw new NotFoundError(`no profile "${name}"`, { hint: 'list profiles with: aim profile list' });
  const recorded = await readEntrypoint(repo, imageId);
  const command = profile.runs.at(-1)?.command;
  return {
    imageId,
    imageRef: req.image,
    profile: name,
    ...planFromProfile(profile, req.ports),
    ...(recorded === undefined && command !== undefined ? { entrypoint: ['/bin/sh', '-c', command] } : {}),
  };
}

/**
 * An error that says the image failed (its artifact cannot be built, it does not boot, its
 * service crashes or a probe misses its expectation), as opposed to one of this machine or of
 * the request (a missing tool or kernel core, no space, a cancellation): only the former is
 * recorded as a failed qualification.
 */
export function isImageFailure(e: unknown): e is AimError {
  if (!isAimError(e) || e.code === 'E_NO_KERNEL') return false;
  return e.exitCode === ExitCode.verifyFailed || e.exitCode === ExitCode.badInput;
}

/** A qualification that did not pass; its record is the result. */
export class QualificationFailedError extends AimError {
  constructor(readonly record: QualificationRecord, cause?: unknown) {
    super('E_QUALIFY_FAILED', `qualification ${record.id} of ${record.imageRef} failed: ${record.error?.message ?? 'a probe did not meet its expectation'}`, ExitCode.verifyFailed, {
      result: record,
      cause,
      hint: 'boot the artifact by hand to watch its console (aim build, then aim boot), or compare the image with its gold (aim verify); the record is in --json and aim channel list',
    });
  }
}

export interface PreparedQualification {
  plan: QualificationPlan;
  artifact: QualificationRecord['artifact'];
  buildMs: number;
  startedAt: string;
  /** Boots and probes; records the result. Throws QualificationFailedError when it failed. */
  run(signal?: AbortSignal): Promise<QualificationRecord>;
  dispose(): Promise<void>;
}

function newRecord(plan: QualificationPlan, fields: Pick<QualificationRecord, 'passed' | 'artifact' | 'probes' | 'timings' | 'startedAt'> & { error?: QualificationRecord['error'] }): QualificationRecord {
  return {
    id: randomBytes(6).toString('hex'),
    imageId: plan.imageId,
    imageRef: plan.imageRef,
    profile: plan.profile,
    ports: plan.ports,
    by: currentActor(),
    finishedAt: new Date().toISOString(),
    ...fields,
  };
}

/** Records a failed qualification (the image's fault) and throws it; rethrows anything else as is. */
async function failed(repo: Repository, plan: QualificationPlan, e: unknown, fields: Omit<Parameters<typeof newRecord>[1], 'passed' | 'error'>): Promise<never> {
  if (!isImageFailure(e)) throw e;
  const record = newRecord(plan, { ...fields, passed: false, error: { code: e.code, message: e.message } });
  await repo.catalog.channels.putQualification(record);
  throw new QualificationFailedError(record, e);
}

/** The probes of a qualification that failed before they ran to their end (the record's error says why). */
const notTried = (plan: QualificationPlan): QualifiedProbe[] => plan.probes.map((p) => ({ probe: probeLabel(p), expectation: probeExpectation(p), met: false, unmet: 'not tried to the end', tries: 0, readyMs: 0 }));

/** Builds the artifact and exports the tree exec probes run in; a build the image makes fail is a failed qualification. */
export async function prepareQualification(repo: Repository, plan: QualificationPlan, req: QualifyRequest, reporter: Reporter): Promise<PreparedQualification> {
  const choice = await qualifyArtifactFor(repo, { imageId: plan.imageId, ...(req.format !== undefined ? { format: req.format } : {}), ...(req.channel !== undefined ? { channel: req.channel } : {}) });
  const format = choice.format as QualifyFormat;
  const pxe = choice.pxe;
  reporter.emit({ type: 'info', message: `qualifying ${plan.imageRef} as ${choice.why}` });
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const scratch = await makeScratchDir('qualify');
  const dispose = () => rm(scratch, { recursive: true, force: true });
  const artifactDir = join(scratch, 'artifact');
  const root = join(scratch, 'root');
  const how = { chosenBy: choice.chosenBy, ...(choice.channel !== undefined ? { channel: choice.channel } : {}), ...(pxe ? { pxeAssignment: pxe.selector } : {}) };
  let artifact: QualificationRecord['artifact'] = { format, bytes: 0, sha256: '', ...how };
  // a PXE assignment's entrypoint is what its machines start; else the one the plan found
  const entrypoint = pxe?.entrypoint ?? plan.entrypoint;
  const kernel = req.kernel ?? pxe?.kernelRef;
  try {
    const built = await buildImage(
      repo,
      {
        imageId: plan.imageId,
        format,
        outDir: artifactDir,
        platform: pxe?.platform ?? (format === 'ova' ? 'vmware' : 'qemu'),
        modules: pxe?.modules ?? [],
        init: 'aim',
        headroomMiB: 64,
        ...(entrypoint ? { entrypoint } : {}),
        ...(kernel === undefined ? {} : { kernelImage: kernel }),
        // the assignment's kernel arguments: its machines boot with them
        ...(pxe?.kernelArgs ? { kernelArgs: pxe.kernelArgs } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      },
      reporter,
    );
    // the largest file names the artifact (the disk, the OVA, the PXE bundle's initrd)
    const main = [...built.artifacts].sort((a, b) => b.bytes - a.bytes)[0];
    artifact = { format, bytes: built.artifacts.reduce((n, a) => n + a.bytes, 0), sha256: main?.sha256 ?? '', ...how };
    if (plan.probes.some((p) => p.kind === 'exec')) await exportImage(repo, plan.imageId, { format: 'dir', out: root, ...(req.signal ? { signal: req.signal } : {}) }, reporter);
    else await mkdir(root);
  } catch (e) {
    await dispose();
    if (req.signal?.aborted) throw cancellationError(req.signal);
    return await failed(repo, plan, e, { artifact, probes: notTried(plan), timings: { buildMs: Date.now() - t0, totalMs: Date.now() - t0 }, startedAt });
  }
  const buildMs = Date.now() - t0;
  return {
    plan,
    artifact,
    buildMs,
    startedAt,
    dispose,
    run: (signal) => bootAndProbe(repo, { plan, artifact, buildMs, startedAt, t0, artifactDir, root, scratch, devices: pxe?.platform === 'vmware' ? 'vmware' : undefined }, { ...req, format, ...(signal ? { signal } : {}) }, reporter),
  };
}

/** The guest console, read on demand, with the count of service exits aim's init reported. */
function consoleWatch(vm: RunningVm) {
  let text = '';
  return {
    async refresh() {
      text = await vm.console();
      return text;
    },
    tail: (lines = 40) => text.split('\n').slice(-lines).join('\n'),
    exits(): { count: number; last?: string } {
      const found = [...text.matchAll(new RegExp(`${SERVICE_EXITED} (\\d+)`, 'g'))];
      return { count: found.length, ...(found.length ? { last: found.at(-1)![1] } : {}) };
    },
    lines: () => text.split('\n').map((l) => l.replace(/\r$/, '')),
  };
}

function judged(r: ProbeResult, spec: ProbeSpec): QualifiedProbe {
  return {
    probe: probeLabel(spec),
    expectation: probeExpectation(spec),
    met: r.met,
    ...(r.unmet !== undefined ? { unmet: r.unmet } : {}),
    tries: r.tries,
    readyMs: r.readyMs,
    ...(r.kind === 'http' && r.status !== undefined ? { status: r.status } : {}),
    ...(r.kind === 'exec' && r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
  };
}

interface Prepared {
  plan: QualificationPlan;
  artifact: QualificationRecord['artifact'];
  buildMs: number;
  startedAt: string;
  t0: number;
  artifactDir: string;
  root: string;
  scratch: string;
  /** QEMU's devices when not the artifact's default (a PXE assignment for VMware machines). */
  devices?: BootDevices;
}

async function bootAndProbe(repo: Repository, p: Prepared, req: QualifyRequest, reporter: Reporter): Promise<QualificationRecord> {
  const { plan, signal } = { plan: p.plan, signal: req.signal };
  let vm: RunningVm | undefined;
  let started = Date.now();
  const fields = () => ({ artifact: p.artifact, startedAt: p.startedAt, timings: { buildMs: p.buildMs, ...(vm ? { vmMs: Date.now() - started } : {}), totalMs: Date.now() - p.t0 } });
  const ns = await startProbeNamespaces(p.root, join(p.scratch, 'work'), signal);
  const stopOnAbort = () => void vm?.stop().catch(() => undefined);
  signal?.addEventListener('abort', stopOnAbort);
  try {
    const found = await findBootArtifact(p.artifactDir);
    const vmDir = join(p.scratch, 'vm');
    await mkdir(vmDir);
    const disk = await bootDisk(found, vmDir, signal);
    started = Date.now();
    vm = await startVm({
      artifact: disk,
      devices: p.devices ?? defaultDevices(found),
      firmware: req.firmware,
      dir: vmDir,
      memoryMiB: req.memoryMiB,
      forwards: plan.ports.map((port) => ({ host: port, guest: port })),
      accel: req.accel,
      tbSizeMiB: req.tbSizeMiB,
      console: 'file',
      netnsOf: ns.pid,
      maxSeconds: Math.ceil(req.readyTimeoutMs / 1000) + 120,
      ...(signal ? { signal } : {}),
    });
    if (signal?.aborted) stopOnAbort();
    reporter.emit({ type: 'stage', stage: 'qualify', status: 'start', detail: `${plan.imageRef} (${req.format}, ${req.memoryMiB} MiB, ${req.accel}); guest ports ${plan.ports.join(', ')}; ${plan.probes.length} probes from profile ${plan.profile}` });
    const running = vm;
    const console = consoleWatch(running);
    const gates: Gate[] = [];
    if (plan.readyLog !== undefined) {
      const pattern = parseReadyLog(plan.readyLog, 'ready-log');
      gates.push({
        name: 'log',
        check: () => console.lines().some((l) => pattern.test(l)),
        notReady: (ms) =>
          new AimError('E_QUALIFY_NOT_READY', `the guest console showed no line matching /${plan.readyLog}/ within ${(ms / 1000).toFixed(1)} s of QEMU's start\n--- guest console (last 40 lines) ---\n${console.tail()}`, ExitCode.verifyFailed, {
            hint: 'raise --ready-timeout for a slow boot, or check the service starts in the booted image (aim boot)',
          }),
      });
    }
    const ctx = ns.context(plan.probeTimeoutMs);
    const run = await probeWhenReady<ProbeSpec, ProbeAttempt>({
      probes: plan.probes,
      gates,
      start: started,
      deadline: started + req.readyTimeoutMs,
      onUnmet: 'record',
      label: probeLabel,
      expectation: probeExpectation,
      judge: (_, r) => r.unmet,
      attempt: (probe) => (probe.kind === 'http' ? runHttpProbe(ctx, probe, () => console.tail()) : runExecProbeUntraced(ctx, probe)),
      async abandon() {
        await console.refresh();
        const exits = console.exits();
        if (exits.count > req.maxRestarts) {
          throw new AimError(
            'E_SERVICE_CRASHED',
            `the service exited ${exits.count} times (last with status ${exits.last}) before its probes met their expectations\n--- guest console (last 40 lines) ---\n${console.tail()}`,
            ExitCode.verifyFailed,
            { hint: 'boot the artifact by hand (aim build, aim boot) and read why the service exits; --max-restarts tolerates more restarts' },
          );
        }
        if (running.exited()) {
          const res = await running.process;
          throw new AimError('E_QUALIFY_VM_EXITED', `QEMU exited (${res.exitCode ?? res.signal}) before the probes met their expectations: ${running.stderr().trim().slice(-400)}\n--- guest console (last 40 lines) ---\n${console.tail()}`, ExitCode.verifyFailed);
        }
      },
      outputTail: async () => (await console.refresh(), console.tail()),
      tailLabel: 'guest console',
      where: `in the booted ${req.format} artifact`,
      ...(signal ? { signal } : {}),
    });
    const probes = (run.rounds[0] ?? []).map((r, i) => judged(r, plan.probes[i]!));
    const unmet = (run.rounds[0] ?? []).findIndex((r) => !r.met);
    if (unmet >= 0) {
      const r = run.rounds[0]![unmet]!;
      const spec = plan.probes[unmet]!;
      await console.refresh();
      const error = new ProbeFailedError({ probe: probeLabel(spec), expectation: probeExpectation(spec), last: r, unmet: r.unmet ?? 'not met', tries: r.tries, waitedMs: r.readyMs, outputTail: console.tail(), tailLabel: 'guest console', where: `in the booted ${req.format} artifact` });
      const record = newRecord(plan, { ...fields(), passed: false, probes, error: { code: error.code, message: error.message } });
      await repo.catalog.channels.putQualification(record);
      throw new QualificationFailedError(record, error);
    }
    const record = newRecord(plan, { ...fields(), passed: true, probes, timings: { ...fields().timings, readyMs: run.readyMs } });
    await repo.catalog.channels.putQualification(record);
    reporter.emit({ type: 'stage', stage: 'qualify', status: 'done', detail: `passed: ${probes.length} probes met their expectations ${(run.readyMs / 1000).toFixed(1)} s after QEMU started` });
    return record;
  } catch (e) {
    if (e instanceof QualificationFailedError) throw e;
    if (signal?.aborted) throw cancellationError(signal);
    // awaited here: the finally below takes a while, and an unawaited rejection would be unhandled meanwhile
    return await failed(repo, plan, e, { ...fields(), probes: notTried(plan) });
  } finally {
    signal?.removeEventListener('abort', stopOnAbort);
    try {
      await vm?.stop();
    } finally {
      await ns.stop();
    }
  }
}

/** Plans, builds, boots and probes; records the result. Throws QualificationFailedError when the image failed. */
export async function qualifyImage(repo: Repository, req: QualifyRequest, reporter: Reporter): Promise<QualificationRecord> {
  const plan = await planQualification(repo, req);
  const prepared = await prepareQualification(repo, plan, req, reporter);
  try {
    return await prepared.run(req.signal);
  } finally {
    await prepared.dispose();
  }
}
