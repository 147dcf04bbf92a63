import type { ImageImpact, ImpactReport, PackageImpact, Verdict } from '../core/lifecycle/impact.js';
import { VERDICTS } from '../core/lifecycle/impact.js';
import { shortId, table } from './format.js';

const TITLES: Record<Verdict, string> = {
  'kept-and-used': 'KEPT AND USED (a slim image keeps a changed file and its profile traced it)',
  'kept-not-used': 'KEPT BUT NOT USED (a slim image keeps a changed file; its profile never opened it)',
  'not-in-slim': 'PRESENT BUT NOT IN THE SLIM IMAGE (the gold image has the package; the slim image keeps none of the changed files)',
  present: 'PRESENT (gold images holding an affected package)',
  'not-affected': 'NOT AFFECTED',
};

/** A package's own verdict, in its image's row (an image is grouped by its most telling one). */
const SHORT: Record<Verdict, string> = { 'kept-and-used': 'used', 'kept-not-used': 'kept', 'not-in-slim': 'not in slim', present: 'present', 'not-affected': '-' };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function list(paths: readonly string[], limit: number): string {
  if (paths.length <= limit) return paths.join(', ');
  return `${paths.slice(0, limit).join(', ')}, … ${paths.length - limit} more (--json for all)`;
}

function packageLines(p: PackageImpact, report: ImpactReport, limit: number): string[] {
  const out: string[] = [];
  const change = report.changes.find((c) => c.key === p.change);
  if (p.traced && p.traced.length > 0) out.push(`traced: ${list(p.traced, limit)}`);
  if (p.kept && p.kept.length > 0 && p.verdict !== 'kept-and-used') out.push(`kept: ${list(p.kept, limit)}`);
  if (change && p.kept === undefined) {
    const basis = change.basis === 'package' ? ' (every file of the package: the update gives no contents to compare)' : '';
    out.push(`changed: ${list(change.files.map((f) => (f.change === 'package' || f.change === 'modified' ? f.path : `${f.path} (${f.change})`)), limit)}${basis}`);
  }
  if (p.note) out.push(`note: ${p.note}`);
  return out;
}

/** The impact report as text: images grouped by verdict, a row per affected package, the files under it. */
export function renderImpact(report: ImpactReport, options: { limit: number; all: boolean }): string {
  const lines: string[] = [];
  const u = report.update;
  const adv = u.advisories.length > 0 ? `, ${plural(u.advisories.length, 'advisory')}` : '';
  lines.push(`update: ${u.kind} ${u.input} (${plural(u.targets, 'package target')}${adv})`);
  for (const n of u.notes) lines.push(`  note: ${n}`);
  for (const verdict of VERDICTS) {
    const images = report.images.filter((i) => i.verdict === verdict);
    lines.push('', `${TITLES[verdict]}: ${plural(images.length, 'image')}`);
    if (images.length === 0) continue;
    if (verdict === 'not-affected' && !options.all) {
      lines.push(`  ${list(images.map(name), 8)}${images.length > 8 ? ' (--all lists them)' : ''}`);
      continue;
    }
    if (verdict === 'not-affected') {
      lines.push(...images.map((i) => `  ${shortId(i.id)}  ${i.tags.join(',') || '-'}`));
      continue;
    }
    const rows: string[][] = [];
    const details: string[][] = [];
    for (const img of images) {
      for (const [k, p] of img.packages.entries()) {
        rows.push([
          k === 0 ? shortId(img.id) : '',
          k === 0 ? img.tags.join(',') || '-' : '',
          SHORT[p.verdict],
          p.binary + (p.source !== p.binary ? ` (${p.source})` : ''),
          p.installed,
          p.fixed ?? '-',
          p.advisory ?? '-',
          String(p.changed),
          p.kept === undefined ? '-' : String(p.kept.length),
          String(p.traced?.length ?? 0),
        ]);
        details.push(packageLines(p, report, options.limit));
      }
    }
    const t = table(['IMAGE', 'TAGS', 'VERDICT', 'PACKAGE', 'INSTALLED', 'FIXED', 'ADVISORY', 'CHANGED', 'KEPT', 'TRACED'], rows).split('\n');
    lines.push(`  ${t[0]}`);
    t.slice(1).forEach((row, i) => lines.push(`  ${row}`, ...details[i]!.map((d) => `      ${d}`)));
  }
  const s = report.summary;
  lines.push(
    '',
    `${plural(s.images, 'image')}: ${s['kept-and-used']} kept and used, ${s['kept-not-used']} kept but not used, ${s['not-in-slim']} not in the slim image, ${s.present} present (gold), ${s['not-affected']} not affected; ${plural(s.inUse, 'image')} use${s.inUse === 1 ? 's' : ''} a changed file`,
  );
  return lines.join('\n');
}

const name = (i: ImageImpact) => i.tags[0] ?? shortId(i.id);
