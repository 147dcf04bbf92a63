// Loaded with --import in every process of the Node 24 test run (scripts/test-node24.mjs puts it
// in NODE_OPTIONS): better-sqlite3 is taken from test/node24/node_modules, whose native addon is
// built for Node 24's ABI, instead of the project's, built for the Node that ran the set-up.
// Whatever resolves into the project's copy (a bare import, vitest's absolute path, a require
// inside the package) is moved to the same file in this copy. Needs module.registerHooks (Node 22.15+).
import { registerHooks } from 'node:module';

const from = new URL('../../node_modules/better-sqlite3/', import.meta.url).href;
const to = new URL('./node_modules/better-sqlite3/', import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    return resolved.url.startsWith(from) ? { ...resolved, url: to + resolved.url.slice(from.length) } : resolved;
  },
});
