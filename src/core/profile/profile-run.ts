import { join } from 'node:path';
import { ConfigError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { releaseRunRoot, runRoot, type RunRoot } from './image-tree.js';
import { indexLater, indexProfile } from '../lifecycle/impact-indexer.js';
import type { Repository } from '../repository/repository.js';
import type { ProfileRecord } from '../repository/types.js';
import type { ProbeResult, ProbeSpec } from './probes.js';
import { runtimeForImage, type ImageRuntime } from '../runtime/for-image.js';
import { runSandboxed, type SandboxResult } from './sandbox.js';
import type { PathEvidence } from './strace-parser.js';

export interface ProfileRunRequest extends TraceRequest {
  imageId: string;
  name: string;
  /** Start the profile afresh on this image, even when it was recorded on another (aim update --reprofile). */
  replace?: boolean;
}

export interface ProfileRunResult {
  profile: ProfileRecord;
  /** This run's own results. */
  run: {
    probes: ProbeResult[];
    paths: number;
    execs: string[];
    ready?: SandboxResult['ready'];
    durationMs: number;
    outputTail: string;
    /** Runtime state created before the workload started: the units used (and whether found from the command), actions applied. */
    runtime: { units: string[]; detected: boolean; tmpfiles: string[]; actions: number };
  };
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** "20s", "1.5m", "500ms", "30" (seconds) → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new ConfigError(`invalid duration "${text}"`, { hint: 'use e.g. 500ms, 20s or 2m' });
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

/** Unions two evidence lists by path: a path used in any run is used. */
export function mergeEvidence(a: readonly PathEvidence[], b: readonly PathEvidence[]): PathEvidence[] {
  const out = new Map<string, PathEvidence>(a.map((e) => [e.path, { ...e }]));
  for (const e of b) {
    const x = out.get(e.path);
    if (!x) {
      out.set(e.path, { ...e });
      continue;
    }
    x.syscalls = [...new Set([...x.syscalls, ...e.syscalls])].sort();
    x.errors = [...new Set([...x.errors, ...e.errors])].sort();
    x.ok ||= e.ok;
    x.exec ||= e.exec;
    x.wrote ||= e.wrote;
  }
  return [...out.values()].sort((p, q) => (p.path < q.path ? -1 : p.path > q.path ? 1 : 0));
}

/** How to tell a workload is ready and the probes that exercise it: what a profile records of each run. */
export interface WorkloadSpec {
  probes: ProbeSpec[];
  readyPort?: number;
  /** A regular expression for the line of output that says the workload is ready. */
  readyLog?: string;
  /** Default 60 s. */
  readyTimeoutMs?: number;
  durationMs?: number;
  /** Per probe try; default 10 s. */
  probeTimeoutMs?: number;
  /** systemd units whose directories are created first; undefined: the units whose ExecStart= runs a program of `run`. */
  units?: readonly string[];
}

/** A workload, how to tell it is ready, and the probes that exercise it. */
export interface TraceRequest extends WorkloadSpec {
  run: string;
  /** Rounds of probes (aim verify); default 1. */
  repeat?: number;
  /** A probe that never meets its expectation fails the run (default), or is recorded as unmet. */
  onUnmet?: 'throw' | 'record';
  /** Said in a probe's error ("in the gold image"). */
  where?: string;
}

/**
 * Runs the workload in the image (an overlay of its cached tree, or a copy: image-tree.ts) under
 * strace in namespaces, with the probes, after creating the runtime state a booted system would
 * have (tmpfiles.d, the workload's units' directories). The run's root and what the workload
 * wrote are always removed; the cached tree stays for the next run.
 */
export async function traceImage(repo: Repository, imageId: string, label: string, req: TraceRequest, reporter: Reporter): Promise<SandboxResult & { runtime: ImageRuntime }> {
  const work = join(await repo.blobs.scratchDir(), `trace-${label}`);
  let held: RunRoot | undefined;
  try {
    const runtime = await runtimeForImage(repo, imageId, { units: req.units, command: req.run }, reporter);
    held = await runRoot(repo, imageId, work, reporter);
    const root = held.root;
    reporter.emit({ type: 'stage', stage: 'profile', status: 'start', detail: req.run });
    const { run, probes, readyPort, readyLog, readyTimeoutMs, durationMs, probeTimeoutMs, repeat, onUnmet, where } = req;
    const result = await runSandboxed({ root, workDir: join(work, 'trace'), run, probes, readyPort, readyLog, readyTimeoutMs, durationMs, probeTimeoutMs, repeat, onUnmet, where, runtime: runtime.actions, reporter });
    reporter.emit({ type: 'stage', stage: 'profile', status: 'done', detail: `${result.trace.paths.size} paths, ${result.probes.length} probes` });
    return { ...result, runtime };
  } finally {
    await releaseRunRoot(held, work, reporter);
  }
}

/**
 * Traces the workload in the image and records every path it used in the named profile (merged
 * with earlier runs of the same name on the same image). A probe that never meets its
 * expectation fails the run (ProbeFailedError) and nothing is stored.
 */
export async function runProfile(repo: Repository, req: ProfileRunRequest, reporter: Reporter): Promise<ProfileRunResult> {
  if (!NAME.test(req.name)) throw new ConfigError(`invalid profile name "${req.name}"`, { hint: 'lowercase letters, digits, ".", "_" and "-"' });
  const recorded = await repo.catalog.getProfile(req.name);
  const existing = req.replace ? undefined : recorded;
  if (existing && existing.imageId !== req.imageId) {
    throw new ConfigError(`profile "${req.name}" belongs to image ${existing.imageId.slice(0, 12)}`, { hint: 'choose another --name' });
  }
  const result = await traceImage(repo, req.imageId, req.name, req, reporter);
  const paths = [...result.trace.paths.values()];
  const now = new Date().toISOString();
  const profile: ProfileRecord = {
    name: req.name,
    imageId: req.imageId,
    createdAt: recorded?.createdAt ?? now,
    updatedAt: now,
    runs: [
      ...(existing?.runs ?? []),
      {
        command: req.run,
        probes: req.probes,
        readyPort: req.readyPort,
        readyLog: req.readyLog,
        readyTimeoutMs: req.readyTimeoutMs,
        durationMs: req.durationMs,
        probeTimeoutMs: req.probeTimeoutMs,
        units: result.runtime.units,
        results: result.probes,
        ready: result.ready,
        ...(result.listening ? { ports: result.listening } : {}),
        at: now,
      },
    ],
    paths: mergeEvidence(existing?.paths ?? [], paths),
    uids: mergeIds(existing?.uids, result.trace.uids),
    gids: mergeIds(existing?.gids, result.trace.gids),
  };
  await repo.catalog.putProfile(profile);
  await indexLater(reporter, `profile ${profile.name}`, () => indexProfile(repo, profile));
  return {
    profile,
    run: {
      probes: result.probes,
      paths: paths.length,
      execs: result.trace.execs,
      ready: result.ready,
      durationMs: result.durationMs,
      outputTail: result.outputTail,
      runtime: { units: result.runtime.units, detected: result.runtime.detected, tmpfiles: result.runtime.tmpfiles, actions: result.runtime.actions.length },
    },
  };
}

function mergeIds(a: readonly number[] | undefined, b: readonly number[] | undefined): number[] {
  return [...new Set([...(a ?? []), ...(b ?? [])])].sort((x, y) => x - y);
}

/** Every unit a profile's runs created runtime state for, each once; undefined when no run recorded units (older profiles). */
export function profileUnits(profile: ProfileRecord): string[] | undefined {
  if (profile.runs.every((r) => r.units === undefined)) return undefined;
  return [...new Set(profile.runs.flatMap((r) => r.units ?? []))];
}
