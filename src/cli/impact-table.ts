import type { ImageRef, ImpactGroup, ImpactReport, PackageImpact, Verdict } from '../core/lifecycle/impact.js';
import { VERDICTS } from '../core/lifecycle/impact.js';
import { shortId, table } from './format.js';

const TITLES: Record<Verdict, string> = {
  'kept-and-used': 'KEPT AND USED (a slim image keeps a changed file and its profile traced it)',
  'kept-not-used': 'KEPT BUT NOT USED (a slim image keeps a changed file; its profile never opened it)',
  'not-in-slim': 'PRESENT BUT NOT IN THE SLIM IMAGE (the gold image has the package; the slim image keeps none of the changed files)',
  present: 'PRESENT (gold images holding an affected package)',
  'not-affected': 'NOT AFFECTED',
};

/** A package's own verdict (a group is filed under its most telling one). */
const SHORT: Record<Verdict, string> = { 'kept-and-used': 'used', 'kept-not-used': 'kept', 'not-in-slim': 'not in slim', present: 'present', 'not-affected': '-' };

const plural = (n: number, word: string) => `${n} ${n === 1 ? word : word.endsWith('y') ? `${word.slice(0, -1)}ies` : `${word}s`}`;

function list(items: readonly string[], limit: number, more: string): string {
  if (items.length <= limit) return items.join(', ');
  return `${items.slice(0, limit).join(', ')}, … ${items.length - limit} more (${more})`;
}

const name = (i: ImageRef) => (i.tags.length > 0 ? `${i.tags.join(',')} (${shortId(i.id)})` : shortId(i.id));

function packageLines(p: PackageImpact, report: ImpactReport, limit: number): string[] {
  const out: string[] = [];
  const change = report.changes.find((c) => c.key === p.change);
  if (p.traced && p.traced.length > 0) out.push(`traced: ${list(p.traced, limit, '--json for all')}`);
  if (p.kept && p.kept.length > 0 && p.verdict !== 'kept-and-used') out.push(`kept: ${list(p.kept, limit, '--json for all')}`);
  if (change && p.kept === undefined) {
    const files = change.files.map((f) => (f.change === 'package' || f.change === 'modified' ? f.path : `${f.path} (${f.change})`));
    out.push(`changed${change.basis === 'package' ? ' (every file of the package: the update gives no contents to compare)' : ''}: ${list(files, limit, '--json for all')}`);
  }
  if (p.note) out.push(`note: ${p.note}`);
  return out;
}

function groupLines(g: ImpactGroup, report: ImpactReport, options: { limit: number; all: boolean }): string[] {
  const lines = [`  ${plural(g.images.length, g.kind === 'slim' ? 'slim image' : g.kind === 'gold' ? 'gold image' : 'image')}: ${list(g.images.map(name), options.all ? Infinity : 10, '--all lists them')}`];
  if (g.packages.length === 0) return lines;
  const rows = g.packages.map((p) => [
    p.binary + (p.source !== p.binary ? ` (${p.source})` : ''),
    SHORT[p.verdict],
    p.installed,
    p.fixed ?? '-',
    p.advisory ?? '-',
    String(p.changed),
    p.kept === undefined ? '-' : String(p.kept.length),
    String(p.traced?.length ?? 0),
  ]);
  const t = table(['PACKAGE', 'VERDICT', 'INSTALLED', 'FIXED', 'ADVISORY', 'CHANGED', 'KEPT', 'TRACED'], rows).split('\n');
  lines.push(`    ${t[0]}`);
  t.slice(1).forEach((row, i) => lines.push(`    ${row}`, ...packageLines(g.packages[i]!, report, options.limit).map((d) => `        ${d}`)));
  return lines;
}

/** The impact report as text: by verdict, each group of images with the same findings, its packages and files. */
export function renderImpact(report: ImpactReport, options: { limit: number; all: boolean }): string {
  const lines: string[] = [];
  const u = report.update;
  const adv = u.advisories.length > 0 ? `, ${plural(u.advisories.length, 'advisory')}` : '';
  lines.push(`update: ${u.kind} ${u.input} (${plural(u.targets, 'package target')}${adv})`);
  for (const n of u.notes) lines.push(`  note: ${n}`);
  for (const verdict of VERDICTS) {
    const groups = report.groups.filter((g) => g.verdict === verdict);
    lines.push('', `${TITLES[verdict]}: ${plural(report.summary[verdict], 'image')}`);
    for (const g of groups) lines.push(...groupLines(g, report, options));
  }
  const s = report.summary;
  lines.push(
    '',
    `${plural(s.images, 'image')}: ${s['kept-and-used']} kept and used, ${s['kept-not-used']} kept but not used, ${s['not-in-slim']} not in the slim image, ${s.present} present (gold), ${s['not-affected']} not affected; ${plural(s.inUse, 'image')} use${s.inUse === 1 ? 's' : ''} a changed file`,
  );
  return lines.join('\n');
}
