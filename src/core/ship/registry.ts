import { ConfigError, ProviderError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { BUILTIN_PROVIDERS } from '../../../providers/index.js';
import type { Provider, ProviderOption } from './provider.js';

/** What one plugin's `aim:providers` hook returned (a Provider or a list of them). */
export interface PluginContribution {
  plugin: string;
  result: unknown;
}

export interface ProviderEntry {
  name: string;
  /** "built-in", or the name of the oclif plugin that contributed it. */
  source: string;
  load(): Promise<Provider>;
}

const NAME = /^[a-z][a-z0-9-]*$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

function badOption(o: unknown): boolean {
  if (!isObject(o)) return true;
  const opt = o as Partial<ProviderOption>;
  return typeof opt.name !== 'string' || !NAME.test(opt.name) || (opt.type !== 'string' && opt.type !== 'boolean') || typeof opt.description !== 'string';
}

/** Checks that a value from a plugin has the Provider shape; a clear error names the plugin otherwise. */
export function asProvider(value: unknown, from: string): Provider {
  const problems: string[] = [];
  if (!isObject(value)) problems.push('not an object');
  else {
    if (typeof value.name !== 'string' || !NAME.test(value.name)) problems.push('name must be lower-case letters, digits and dashes');
    if (typeof value.summary !== 'string') problems.push('summary must be a string');
    if (!Array.isArray(value.options) || value.options.some(badOption)) problems.push('options must be a list of { name, description, type: "string" | "boolean" }');
    for (const f of ['plan', 'check', 'ship']) if (typeof value[f] !== 'function') problems.push(`${f} must be a function`);
  }
  if (problems.length > 0) {
    const name = isObject(value) && typeof value.name === 'string' ? ` "${value.name}"` : '';
    throw new ProviderError(`provider${name} from ${from} is malformed: ${problems.join('; ')}`, { hint: `fix or uninstall the plugin (aim plugins uninstall ${from})` });
  }
  return value as unknown as Provider;
}

/**
 * Every provider: the built-in ones, then those plugins contribute. A plugin cannot replace a
 * built-in provider or one an earlier plugin gave (it is skipped with a warning), and a malformed
 * contribution is skipped with a warning, so one broken plugin does not break `aim ship`.
 */
export function providerEntries(contributions: PluginContribution[], reporter: Reporter): ProviderEntry[] {
  const entries: ProviderEntry[] = Object.entries(BUILTIN_PROVIDERS).map(([name, load]) => ({ name, source: 'built-in', load }));
  for (const { plugin, result } of contributions) {
    if (result === undefined || result === null) continue;
    for (const value of Array.isArray(result) ? result : [result]) {
      let provider: Provider;
      try {
        provider = asProvider(value, plugin);
      } catch (e) {
        reporter.emit({ type: 'warn', code: 'W_BAD_PROVIDER', message: (e as Error).message });
        continue;
      }
      const clash = entries.find((e) => e.name === provider.name);
      if (clash) {
        reporter.emit({ type: 'warn', code: 'W_PROVIDER_CLASH', message: `provider ${provider.name} from ${plugin} ignored: ${clash.source === 'built-in' ? 'a built-in provider' : `plugin ${clash.source}`} has that name` });
        continue;
      }
      entries.push({ name: provider.name, source: plugin, load: async () => provider });
    }
  }
  return entries;
}

/** The provider named, loaded; a ConfigError listing the known ones otherwise. */
export async function findProvider(name: string, entries: ProviderEntry[]): Promise<{ provider: Provider; source: string }> {
  const entry = entries.find((e) => e.name === name);
  if (!entry) {
    throw new ConfigError(`no provider "${name}"`, {
      hint: `known providers: ${entries.map((e) => e.name).join(', ')}; third-party providers are oclif plugins (aim plugins install <package>)`,
    });
  }
  const provider = entry.source === 'built-in' ? asProvider(await entry.load(), 'aim') : await entry.load();
  return { provider, source: entry.source };
}
