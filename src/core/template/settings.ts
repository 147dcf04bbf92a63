/**
 * Where every setting of profile, slim and verify comes from, in one place:
 * flags > AIM_* environment > template file > defaults.
 * Keep/drop globs and kept packages add up (template, then flags): a flag extends a template's
 * rules rather than silently discarding them. Probes given as flags replace the template's.
 */
import { ConfigError } from '../../lib/errors.js';
import type { ClosureRules } from '../closure/types.js';
import type { ProbeSpec } from '../profile/probes.js';
import { parseDuration } from '../profile/profile-run.js';
import type { LoadedTemplate } from './load.js';

export interface SettingFlags {
  gold?: string;
  profile?: string;
  run?: string;
  readyPort?: number;
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

/** Resolves the settings of a command from its flags, the environment and an optional template. */
export function resolveSettings(flags: SettingFlags, env: NodeJS.ProcessEnv = process.env, loaded?: LoadedTemplate): Settings {
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
  const templateProbes: ProbeSpec[] = (t?.profile?.probes ?? []).map((p) => ('http' in p ? { kind: 'http', url: p.http } : { kind: 'exec', command: p.exec }));
  const settings: Settings = {
    gold: first(flags.gold, nonEmpty(env.AIM_GOLD), t?.gold?.tag),
    profile: first(flags.profile, nonEmpty(env.AIM_PROFILE), t?.name),
    run: first(flags.run, nonEmpty(env.AIM_RUN), t?.profile?.run),
    readyPort: first(port(flags.readyPort, '--ready-port'), port(env.AIM_READY_PORT, 'AIM_READY_PORT'), port(t?.profile?.['ready-port'], 'profile.ready-port')),
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
  if (settings.probeTimeoutMs <= 0) throw new ConfigError(`${timeoutText[1]} ${timeoutText[0]}: the probe timeout must be positive`);
  return settings;
}

/** A setting a command cannot do without: names every way to give it. */
export function requireSetting<T>(value: T | undefined, what: string, flag: string, envName: string, templateKey: string): T {
  if (value === undefined) throw new ConfigError(`no ${what}: give ${flag}, set ${envName}, or use a --template with ${templateKey}`);
  return value;
}
