import type { UpdateResult } from '../core/lifecycle/update-image.js';
import { formatBytes, formatCount, table } from './format.js';

/** aim update's report for people: packages, scripts, the new versions, artifacts, notes. */
export function renderUpdate(r: UpdateResult): string {
  const out: string[] = [];
  out.push(
    table(
      ['PACKAGE', 'FROM', 'TO', 'CHANGED', 'ADDED', 'REMOVED'],
      r.packages.map((p) => [`${p.name}:${p.arch}`, p.from, p.to, formatCount(p.changed.length), formatCount(p.added.length), formatCount(p.removed.length)]),
    ),
  );
  for (const p of r.packages) {
    const shown = p.changed.slice(0, 5);
    if (shown.length > 0) out.push(`  ${p.name} changes ${shown.join(', ')}${p.changed.length > shown.length ? `, … (${p.changed.length - shown.length} more)` : ''}`);
    if (p.keptConffiles.length > 0) out.push(`  ${p.name}: kept the image's own ${p.keptConffiles.join(', ')} (the package's version written as .dpkg-dist)`);
  }
  if (r.scripts.length === 0) out.push('maintainer scripts: none run during this upgrade');
  else {
    out.push('maintainer scripts and triggers the upgrade runs:');
    for (const s of r.scripts) out.push(`  ${s.package} ${s.name} (${s.from}): ${s.runs}${s.size ? `, ${formatBytes(s.size)}` : ''}`);
    const run = r.scriptRun;
    if (run) {
      const what = run.changes.length === 0 ? 'changed no file beyond the packages\' own' : `changed ${run.changes.length} file(s)${run.accepted ? ', kept (--accept-scripts)' : ''}: ${run.changes.slice(0, 5).map((c) => c.path).join(', ')}`;
      out.push(`  ran with dpkg in the sandbox (${(run.durationMs / 1000).toFixed(1)} s): ${what}`);
    }
  }
  out.push(`gold ${r.parent.ref} (${r.parent.id.slice(0, 12)}) → ${r.gold.ref} (${r.gold.id.slice(0, 12)})`);
  for (const s of r.slims) {
    out.push(`slim ${s.parent.ref} (${s.parent.id.slice(0, 12)}) → ${s.ref} (${s.id.slice(0, 12)}): profile ${s.profile}${s.reprofiled ? ' (traced again)' : ''}, ${formatCount(s.files)} files, ${formatBytes(s.bytes)}`);
  }
  for (const a of r.artifacts) out.push(`built ${a.format} of the ${a.of} image: ${a.artifacts.map((x) => x.path).join(', ')}`);
  for (const s of r.skipped) out.push(`left out: ${s.name}:${s.arch} ${s.version} (${s.why}; ${s.installed} installed)`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(`by ${r.actor} at ${r.at}`);
  return out.join('\n');
}
