#!/usr/bin/env node
// npm run bench -- <suite>   (suites: import, slim, oci, build, pxe (boots, then serving), pxe-boot, pxe-serve, impact, aws; more arrive with later capabilities)
const both = (...mods) => async () => ({ default: async () => { for (const m of mods) await (await m()).default(); } });
const pxeBoot = () => import('./pxe.mjs');
const pxeServe = () => import('./pxe-serve.mjs');
const suites = { import: () => import('./import.mjs'), slim: () => import('./slim.mjs'), oci: () => import('./oci.mjs'), build: () => import('./build.mjs'), pxe: both(pxeBoot, pxeServe), 'pxe-boot': pxeBoot, 'pxe-serve': pxeServe, impact: () => import('./impact.mjs'), aws: () => import('./aws.mjs') };
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
