#!/usr/bin/env node
// npm run bench -- <suite>   (suites: import, slim, oci, build, pxe, impact; more arrive with later capabilities)
const suites = { import: () => import('./import.mjs'), slim: () => import('./slim.mjs'), oci: () => import('./oci.mjs'), build: () => import('./build.mjs'), pxe: () => import('./pxe.mjs'), impact: () => import('./impact.mjs') };
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const chosen = names.length > 0 ? names : Object.keys(suites);
for (const name of chosen) {
  if (!suites[name]) {
    console.error(`bench: unknown suite "${name}" (known: ${Object.keys(suites).join(', ')})`);
    process.exit(2);
  }
  const mod = await suites[name]();
  await mod.default();
}
