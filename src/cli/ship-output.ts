import type { Command } from '@oclif/core';
import type { PublicationView } from '../core/ship/publication-run.js';
import type { ProviderPlan, Published } from '../core/ship/provider.js';
import type { Artifact } from '../core/build/types.js';
import { formatBytes, shortId, table } from './format.js';

interface Printable {
  provider: string;
  imageId: string;
  dryRun?: boolean;
  plan: ProviderPlan;
  publication?: PublicationView;
  alreadyPublished: boolean;
  resumed: boolean;
  artifacts: Artifact[];
  buildsRemoved?: boolean;
  published: Published[];
  seconds?: number;
}

/** The plan as `--dry-run` shows it: one line per step, then the notes. */
export function planLines(plan: ProviderPlan): string[] {
  const width = Math.max(0, ...plan.steps.map((s) => s.action.length));
  const lines = plan.steps.map((s) => `  ${s.action.padEnd(width)}  ${s.subject}${s.detail ? `  → ${s.detail}` : ''}`);
  if (plan.upToDate) lines.push('  nothing to do: already published');
  for (const n of plan.notes ?? []) lines.push(`  note: ${n}`);
  return lines;
}

const publishedLine = (p: Published) => `published ${p.kind}: ${p.id ? `${p.id} (${p.location})` : p.location}`;

/** What `aim ship` and `aim ship resume` print without --json. */
export function printShipResult(cmd: Pick<Command, 'log'>, r: Printable): void {
  const pub = r.publication;
  if (r.dryRun) {
    cmd.log(`plan: ship ${shortId(r.imageId)} through ${r.provider}${pub ? ` (publication ${pub.id}, ${pub.state})` : ''}`);
    for (const line of planLines(r.plan)) cmd.log(line);
    return;
  }
  if (r.alreadyPublished) {
    cmd.log(`already published as publication ${pub?.id}: nothing done`);
    for (const p of r.published) cmd.log(publishedLine(p));
    return;
  }
  if (r.buildsRemoved) cmd.log(`built ${r.artifacts.length} artifact(s) (${formatBytes(r.artifacts.reduce((n, a) => n + a.bytes, 0))}) in aim's scratch space: removed, now published`);
  else if (r.artifacts.length > 0) cmd.log(table(['ARTIFACT', 'SIZE'], r.artifacts.map((a) => [a.path, formatBytes(a.bytes)])));
  for (const p of r.published) cmd.log(publishedLine(p));
  cmd.log(`${r.resumed ? 'resumed and finished' : 'shipped'} ${shortId(r.imageId)} through ${r.provider} as publication ${pub?.id}${r.seconds !== undefined ? ` in ${r.seconds.toFixed(1)} s` : ''}`);
}
