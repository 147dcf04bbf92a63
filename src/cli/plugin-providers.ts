import type { Interfaces } from '@oclif/core';
import { BUILTIN_PROVIDERS } from '../../providers/index.js';
import type { Reporter } from '../lib/reporter.js';
import { providerEntries, type ProviderEntry } from '../core/ship/registry.js';

/** The hook a plugin declares (package.json oclif.hooks) to contribute providers: it returns a Provider or a list. */
export const PROVIDERS_HOOK = 'aim:providers';

/**
 * Built-in providers (injected here: core never imports providers/) plus those of installed or
 * linked oclif plugins (a failing hook is a warning).
 */
export async function allProviders(config: Interfaces.Config, reporter: Reporter): Promise<ProviderEntry[]> {
  const { successes, failures } = await config.runHook(PROVIDERS_HOOK, {}, 30_000, true);
  for (const f of failures) {
    reporter.emit({ type: 'warn', code: 'W_PLUGIN_HOOK_FAILED', message: `plugin ${f.plugin.name} could not list its providers: ${f.error.message}` });
  }
  return providerEntries(BUILTIN_PROVIDERS, successes.map((s) => ({ plugin: s.plugin.name, result: s.result })), reporter);
}
