import { ConfigError, ProviderError } from '../../lib/errors.js';
import type { Reporter } from '../../lib/reporter.js';
import { isOptionsSchema, optionSpecs } from './options.js';
import type { AnyProvider } from './provider.js';

/** What one plugin's `aim:providers` hook returned (a Provider or a list of them). */
export interface PluginContribution {
  plugin: string;
  result: unknown;
}

/** The providers aim ships with: name → lazy import. The CLI passes them in; core never imports providers/. */
export type BuiltinProviders = Record<string, () => Promise<unknown>>;

export interface ProviderEntry {
  name: string;
  /** "built-in", or the name of the oclif plugin that contributed it. */
  source: string;
  load(): Promise<AnyProvider>;
}

const NAME = /^[a-z][a-z0-9-]*$/;
/** Subcommands of `aim ship`: a provider with one of these names could never be reached. */
export const RESERVED_NAMES = new Set(['list', 'rm', 'resume']);
const METHODS = ['target', 'observe', 'plan', 'apply', 'remove'] as const;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** Checks that a value has the Provider shape (contract v2); a clear error names where it came from otherwise. */
export function asProvider(value: unknown, from: string): AnyProvider {
  const problems: string[] = [];
  if (!isObject(value)) problems.push('not an object');
  else {
    if (typeof value.name !== 'string' || !NAME.test(value.name)) problems.push('name must be lower-case letters, digits and dashes');
    else if (RESERVED_NAMES.has(value.name)) problems.push(`name "${value.name}" is taken by \`aim ship ${value.name}\``);
    if (typeof value.summary !== 'string') problems.push('summary must be a string');
    if (!isOptionsSchema(value.options)) problems.push('options must be a zod object schema (z.object({...}) from aim/provider)');
    else {
      try {
        optionSpecs(value.options);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    for (const f of METHODS) if (typeof value[f] !== 'function') problems.push(`${f} must be a function`);
    if (value.resume !== undefined && typeof value.resume !== 'function') problems.push('resume must be a function when given');
  }
  if (problems.length > 0) {
    const name = isObject(value) && typeof value.name === 'string' ? ` "${value.name}"` : '';
    throw new ProviderError(`provider${name} from ${from} is malformed: ${problems.join('; ')}`, {
      hint: from === 'aim' ? undefined : `fix or uninstall the plugin (aim plugins uninstall ${from}); providers follow the contract of aim/provider`,
    });
  }
  return value as unknown as AnyProvider;
}

/**
 * Every provider: the built-in ones the CLI passes in, then those plugins contribute. A plugin
 * cannot replace a built-in provider or one an earlier plugin gave (it is skipped with a
 * warning), and a malformed contribution is skipped with a warning, so one broken plugin does not
 * break `aim ship`.
 */
export function providerEntries(builtins: BuiltinProviders, contributions: PluginContribution[], reporter: Reporter): ProviderEntry[] {
  const entries: ProviderEntry[] = Object.entries(builtins).map(([name, load]) => ({ name, source: 'built-in', load: async () => asProvider(await load(), 'aim') }));
  for (const { plugin, result } of contributions) {
    if (result === undefined || result === null) continue;
    for (const value of Array.isArray(result) ? result : [result]) {
      let provider: AnyProvider;
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
export async function findProvider(name: string, entries: ProviderEntry[]): Promise<{ provider: AnyProvider; source: string }> {
  const entry = entries.find((e) => e.name === name);
  if (!entry) {
    throw new ConfigError(`no provider "${name}"`, {
      hint: `known providers: ${entries.map((e) => e.name).join(', ')}; third-party providers are oclif plugins (aim plugins install <package>)`,
    });
  }
  return { provider: await entry.load(), source: entry.source };
}
