/**
 * Where every setting of profile, slim and verify comes from, in one place:
 * flags > AIM_* environment > what the repository records (a slim image's gold and profile) >
 * template file > defaults.
 * Keep/drop globs and kept packages add up (template, then flags): a flag extends a template's
 * rules rather than silently discarding them. Probes given as flags replace the template's.
 */
import { ConfigError } from '../../lib/errors.js';
import type { ClosureRules } from '../closure/types.js';
import { execProbe, httpProbe, type ProbeSpec } from '../profile/probes.js';
import { parseDuration } from '../profile/profile-run.js';
import { parseReadyLog } from '../probe/line-watch.js';
import type { LoadedTemplate } from './load.js';
import type { TemplateProbe } from './schema.js';

export interface SettingFlags {
  gold?: string;
  profile?: string;
  run?: string;
  readyPort?: number;
  readyLog?: string;
  readyTimeout?: string;
  duration?: string;
  probeTimeout?: string;
  tags?: string[];
  entrypoint?: string;
  probes?: ProbeSpec[];
  keep?: string[];
  drop?: string[];
  keepPackages?: string[];
  units?: string[];
}

export interface Settings {
  /** The gold image (name:tag or id). */
  gold?: string;
  /** Profile name. */
  profile?: string;
  /** Workload command. */
  run?: string;
  readyPort?: number;
  /** A regular expression for the workload's ready line. */
  readyLog?: string;
  readyTimeoutMs: number;
  durationMs: number;
  probeTimeoutMs: number;
  probes: ProbeSpec[];
  /** systemd units of the workload (runtime directories); undefined: found from the command. */
  units?: string[];
  /** Tags of the slim image. */
  tags: string[];
  /** What the slim image starts, as argv. */
  entrypoint?: string[];
  rules: Required<Pick<ClosureRules, 'keepGlobs' | 'dropGlobs' | 'keepPackages'>>;
}

export const DEFAULT_DURATION = '20s';
export const DEFAULT_PROBE_TIMEOUT = '10s';
export const DEFAULT_READY_TIMEOUT = '60s';

/** What the repository records about the image at hand (a slim image's gold and profile). */
export interface Recorded {
  gold?: string;
  profile?: string;
}

const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v.trim() === '' ? undefined : v);
const list = (v: string | undefined): string[] | undefined => nonEmpty(v)?.split(',').map((s) => s.trim()).filter(Boolean);
const shell = (command: string): string[] => ['/bin/sh', '-c', command];
const mapDefined = <T, U>(v: T | undefined, f: (v: T) => U): U | undefined => (v === undefined ? undefined : f(v));

function port(value: number | string | undefined, source: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`${source} ${value}: not a TCP port (1-65535)`);
  return n;
}

function duration(value: string, source: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    throw new ConfigError(`${source}: ${(e as Error).message}`, { hint: 'use e.g. 500ms, 20s or 2m' });
  }
}

/** A template probe and its expectation as a probe spec. */
export function templateProbe(p: TemplateProbe): ProbeSpec {
  return 'http' in p ? httpProbe(p.http, { status: p.status, bodyContains: p.bodyContains }) : execProbe(p.exec, { exitCode: p.exitCode, outputContains: p.outputContains });
}

/**
 * Resolves the settings of a command from its flags, the environment, what the repository
 * records about its image, and an optional template, in that order.
 */
export function resolveSettings(flags: SettingFlags, env: NodeJS.ProcessEnv = process.env, loaded?: LoadedTemplate, recorded: Recorded = {}): Settings {
  const t = loaded?.template;
  const first = <T>(...values: (T | undefined)[]): T | undefined => values.find((v) => v !== undefined);
  const durationText = first<[string, string]>(
    flags.duration === undefined ? undefined : [flags.duration, '--duration'],
    nonEmpty(env.AIM_DURATION) === undefined ? undefined : [env.AIM_DURATION!, 'AIM_DURATION'],
    t?.profile?.duration === undefined ? undefined : [t.profile.duration, 'profile.duration'],
  ) ?? [DEFAULT_DURATION, 'default'];
  const timeoutText = first<[string, string]>(
    flags.probeTimeout === undefined ? undefined : [flags.probeTimeout, '--probe-timeout'],
    nonEmpty(env.AIM_PROBE_TIMEOUT) === undefined ? undefined : [env.AIM_PROBE_TIMEOUT!, 'AIM_PROBE_TIMEOUT'],
    t?.profile?.['probe-timeout'] === undefined ? undefined : [t.profile['probe-timeout'], 'profile.probe-timeout'],
  ) ?? [DEFAULT_PROBE_TIMEOUT, 'default'];
  const templateEntrypoint = t?.entrypoint === undefined ? undefined : typeof t.entrypoint === 'string' ? shell(t.entrypoint) : t.entrypoint;
  const readyTimeoutText = first<[string, string]>(
    flags.readyTimeout === undefined ? undefined : [flags.readyTimeout, '--ready-timeout'],
    nonEmpty(env.AIM_READY_TIMEOUT) === undefined ? undefined : [env.AIM_READY_TIMEOUT!, 'AIM_READY_TIMEOUT'],
    t?.profile?.['ready-timeout'] === undefined ? undefined : [t.profile['ready-timeout'], 'profile.ready-timeout'],
  ) ?? [DEFAULT_READY_TIMEOUT, 'default'];
  const readyLog = first<[string, string]>(
    nonEmpty(flags.readyLog) === undefined ? undefined : [flags.readyLog!, '--ready-log'],
    nonEmpty(env.AIM_READY_LOG) === undefined ? undefined : [env.AIM_READY_LOG!, 'AIM_READY_LOG'],
    t?.profile?.['ready-log'] === undefined ? undefined : [t.profile['ready-log'], 'profile.ready-log'],
  );
  if (readyLog) parseReadyLog(readyLog[0], readyLog[1]);
  const templateProbes = (t?.profile?.probes ?? []).map(templateProbe);
  const settings: Settings = {
    gold: first(flags.gold, nonEmpty(env.AIM_GOLD), recorded.gold, t?.gold?.tag),
    profile: first(flags.profile, nonEmpty(env.AIM_PROFILE), recorded.profile, t?.name),
    run: first(flags.run, nonEmpty(env.AIM_RUN), t?.profile?.run),
    readyPort: first(port(flags.readyPort, '--ready-port'), port(env.AIM_READY_PORT, 'AIM_READY_PORT'), port(t?.profile?.['ready-port'], 'profile.ready-port')),
    readyLog: readyLog?.[0],
    readyTimeoutMs: duration(readyTimeoutText[0], readyTimeoutText[1]),
    durationMs: duration(durationText[0], durationText[1]),
    probeTimeoutMs: duration(timeoutText[0], timeoutText[1]),
    probes: flags.probes && flags.probes.length > 0 ? flags.probes : templateProbes,
    units: first(flags.units && flags.units.length > 0 ? flags.units : undefined, list(env.AIM_UNIT), mapDefined(t?.profile?.unit, (u) => (typeof u === 'string' ? [u] : u))),
    tags: first(flags.tags && flags.tags.length > 0 ? flags.tags : undefined, list(env.AIM_TAGS), t?.slim?.tags) ?? [],
    entrypoint: first(mapDefined(nonEmpty(flags.entrypoint), shell), mapDefined(nonEmpty(env.AIM_ENTRYPOINT), shell), templateEntrypoint),
    rules: {
      keepGlobs: [...(t?.slim?.keep ?? []), ...(flags.keep ?? [])],
      dropGlobs: [...(t?.slim?.drop ?? []), ...(flags.drop ?? [])],
      keepPackages: [...(t?.slim?.['keep-packages'] ?? []), ...(flags.keepPackages ?? [])],
    },
  };
  if (settings.readyTimeoutMs <= 0) throw new ConfigError(`${readyTimeoutText[1]} ${readyTimeoutText[0]}: the ready timeout must be positive`);
  if (settings.probeTimeoutMs <= 0) throw new ConfigError(`${timeoutText[1]} ${timeoutText[0]}: the probe timeout must be positive`);
  return settings;
}

/** A setting a command cannot do without: names every way to give it. */
export function requireSetting<T>(value: T | undefined, what: string, flag: string, envName: string, templateKey: string): T {
  if (value === undefined) throw new ConfigError(`no ${what}: give ${flag}, set ${envName}, or use a --template with ${templateKey}`);
  return value;
}
