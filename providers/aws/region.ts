import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AimError, ConfigError, ExitCode } from '../../src/lib/errors.js';

/** A region name as AWS spells them (us-east-1, us-gov-west-1, cn-north-1, eu-isoe-west-1). */
export const REGION_SHAPE = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/** The profile in use: --profile, else AWS_PROFILE, else "default" (as the SDK picks it). */
export const profileName = (profile: string | undefined, env: NodeJS.ProcessEnv) => profile ?? env.AWS_PROFILE ?? 'default';

/**
 * The region of a profile in the shared config file (AWS_CONFIG_FILE or ~/.aws/config), read
 * synchronously: the region is part of where a ship goes, decided before anything runs.
 */
export function profileRegion(profile: string, env: NodeJS.ProcessEnv): string | undefined {
  const file = env.AWS_CONFIG_FILE ?? join(env.HOME ?? homedir(), '.aws', 'config');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const wanted = profile === 'default' ? ['default', 'profile default'] : [`profile ${profile}`];
  let inSection = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      inSection = wanted.includes(section[1]!.replace(/\s+/g, ' '));
      continue;
    }
    const kv = /^region\s*=\s*(\S+)$/.exec(line);
    if (inSection && kv) return kv[1];
  }
  return undefined;
}

/** The region given: --region, AWS_REGION (the option's environment), AWS_DEFAULT_REGION, the profile's; undefined when none is. */
export function givenRegion(options: { region?: string | undefined; profile?: string | undefined }, env: NodeJS.ProcessEnv): string | undefined {
  return options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? profileRegion(profileName(options.profile, env), env);
}

export function noRegionError(profile: string | undefined, env: NodeJS.ProcessEnv): ConfigError {
  return new ConfigError('no AWS region: give --region, set AWS_REGION, or set region in the profile', { hint: `e.g. --region eu-west-1 (profile "${profileName(profile, env)}" has no region in ${env.AWS_CONFIG_FILE ?? '~/.aws/config'})` });
}

/** The region a ship goes to (givenRegion), checked: none is an error. */
export function resolveRegion(options: { region?: string | undefined; profile?: string | undefined }, env: NodeJS.ProcessEnv): string {
  const region = givenRegion(options, env);
  if (!region) throw noRegionError(options.profile, env);
  if (!REGION_SHAPE.test(region)) throw regionError(`"${region}" is not an AWS region name`, 'regions look like eu-west-1 or us-east-2');
  return region;
}

/** The region that answers for a whole partition (DescribeRegions with AllRegions lists every region there). */
export function partitionHome(region: string): string {
  if (region.startsWith('cn-')) return 'cn-north-1';
  if (region.startsWith('us-gov-')) return 'us-gov-west-1';
  if (/^[a-z]{2}-iso/.test(region)) return region;
  return 'us-east-1';
}

export function regionError(message: string, hint: string): AimError {
  return new AimError('E_AWS_REGION', message, ExitCode.usage, { hint });
}

/** What DescribeRegions (AllRegions) says about the regions a ship uses: unknown or not enabled is an error. */
export function checkRegions(wanted: readonly string[], known: readonly { name: string; optIn?: string }[]): void {
  const byName = new Map(known.map((r) => [r.name, r]));
  const unknown = wanted.filter((r) => !byName.has(r));
  if (unknown.length > 0) {
    throw regionError(`unknown AWS region${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`, `known regions: ${[...byName.keys()].sort().join(', ')}`);
  }
  const off = wanted.filter((r) => byName.get(r)!.optIn === 'not-opted-in');
  if (off.length > 0) {
    throw regionError(`region${off.length > 1 ? 's' : ''} ${off.join(', ')} ${off.length > 1 ? 'are' : 'is'} not enabled for this account`, 'enable opt-in regions in the AWS console (Account → AWS Regions) or choose another region');
  }
}
