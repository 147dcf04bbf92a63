import type { Provider } from '../src/core/ship/provider.js';

/**
 * The built-in providers: name → lazy import, so `aim ship vmware` loads only the vmware code.
 * Third-party providers need no entry here: they come from oclif plugins (src/core/ship/registry.ts).
 */
export const BUILTIN_PROVIDERS: Record<string, () => Promise<Provider>> = {
  vmware: async () => (await import('./vmware/index.js')).vmware,
};
