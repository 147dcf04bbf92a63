import type { BuiltinProviders } from '../src/core/ship/registry.js';

/**
 * The built-in providers: name → lazy import, so `aim ship vmware` loads only the vmware code.
 * The CLI passes this map to the registry (src/cli/plugin-providers.ts); core never imports it.
 * Third-party providers need no entry here: they come from oclif plugins.
 */
export const BUILTIN_PROVIDERS: BuiltinProviders = {
  aws: async () => (await import('./aws/index.js')).aws,
  vmware: async () => (await import('./vmware/index.js')).vmware,
};
