import type { ChannelView } from '../core/lifecycle/channels.js';
import type { RolloutReport } from '../core/lifecycle/rollout.js';
import type { ChannelHistoryEntry, QualificationRecord } from '../core/model/channel.js';
import { shortId, table } from './format.js';

export function channelsTable(channels: readonly ChannelView[]): string {
  if (channels.length === 0) return 'no channels (aim channel promote <image> <channel>)';
  const rows = channels.map((c) => [
    c.name,
    `${c.imageRef} (${shortId(c.imageId)})${c.imageMissing ? ' MISSING' : ''}`,
    c.state + (c.rollout && c.state !== 'ready' ? ` (rollout ${c.rollout.id})` : ''),
    c.qualification ? `${c.qualification.passed ? 'passed' : 'FAILED'} ${c.qualification.id}` : '-',
    c.amis.map((a) => `${a.region}=${a.amiId}`).join(' ') || '-',
    c.updatedAt.replace('T', ' ').slice(0, 19),
  ]);
  return table(['CHANNEL', 'IMAGE', 'STATE', 'QUALIFICATION', 'AMIS', 'SINCE'], rows);
}

/** One line per effect: PXE assignments switched, AMI pointers set or removed. */
function effects(e: ChannelHistoryEntry): string {
  const pxe = e.effects.pxe.map((p) => `pxe ${p.selector} → ${shortId(p.to)}`);
  const amis = e.effects.amis.map((a) => `ami ${a.region} ${a.to ?? 'removed'}`);
  return [...pxe, ...amis].join(', ') || '-';
}

export function historyTable(entries: readonly ChannelHistoryEntry[]): string {
  if (entries.length === 0) return 'no history';
  const rows = entries.map((e) => [
    e.at.replace('T', ' ').slice(0, 19),
    e.action,
    `${e.imageRef} (${shortId(e.imageId)})`,
    e.fromImageId ? `${e.fromImageRef} (${shortId(e.fromImageId)})` : '-',
    `${e.by.user}@${e.by.host}`,
    effects(e),
    [e.rollout ? `rollout ${e.rollout}` : '', e.qualification && !e.reason?.includes(e.qualification) ? `qualification ${e.qualification}` : '', e.reason ?? ''].filter(Boolean).join('; ') || '-',
  ]);
  return table(['TIME', 'ACTION', 'IMAGE', 'FROM', 'BY', 'FOLLOWED', 'WHY'], rows);
}

/** How the artifact was chosen, for the qualification's text (nothing for records made before aim chose). */
function artifactWhy(a: QualificationRecord['artifact']): string {
  if (a.chosenBy === 'flag') return ' (--format)';
  if (a.chosenBy === 'channel') return ` (PXE assignment ${a.pxeAssignment} follows channel ${a.channel})`;
  if (a.chosenBy === 'default') return a.channel !== undefined ? ` (no PXE assignment follows channel ${a.channel})` : ' (no channel holds it)';
  return '';
}

/** A qualification in a few lines: verdict, timings, each probe. */
export function qualificationText(q: QualificationRecord): string {
  const s = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
  const lines = [
    `qualification ${q.id} of ${q.imageRef} (${shortId(q.imageId)}) with profile ${q.profile}: ${q.passed ? 'PASSED' : 'FAILED'}`,
    `  ${q.artifact.format} artifact${artifactWhy(q.artifact)} built in ${s(q.timings.buildMs)}; ${q.passed ? `ready ${s(q.timings.readyMs)}` : `failed ${s(q.timings.vmMs)}`} after QEMU started; ${s(q.timings.totalMs)} in all; guest ports ${q.ports.join(', ') || '-'}`,
  ];
  for (const p of q.probes) {
    const answer = p.status !== undefined ? `HTTP ${p.status}` : p.exitCode !== undefined ? `exit ${p.exitCode}` : 'no answer';
    if (p.tries === 0) lines.push(`  FAIL ${p.probe} (${p.expectation}): ${p.unmet ?? 'not tried'}`);
    else lines.push(`  ${p.met ? 'ok  ' : 'FAIL'} ${p.probe} (${p.expectation}): ${answer}, ${p.tries} ${p.tries === 1 ? 'try' : 'tries'}, ${s(p.readyMs)}${p.unmet ? `; ${p.unmet}` : ''}`);
  }
  if (q.error) lines.push(`  why: ${q.error.message.split('\n')[0]}`);
  return lines.join('\n');
}

/** A rollout: what it did, its qualification, the history entries it wrote. */
export function rolloutText(r: RolloutReport): string {
  const img = (i: { id: string; ref: string }) => `${i.ref} (${shortId(i.id)})`;
  const s = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
  const verdict: Record<RolloutReport['outcome'], string> = {
    promoted: 'PROMOTED',
    'rolled-back': 'ROLLED BACK',
    rejected: 'REJECTED (the channel never moved)',
    unchanged: 'UNCHANGED',
    'rollback-failed': 'ROLLBACK FAILED',
  };
  const lines = [
    `rollout ${r.id} → channel ${r.channel}: ${verdict[r.outcome]}`,
    `  previous ${img(r.previous)}${r.candidate ? `, candidate ${img(r.candidate)}` : ''}; the channel holds ${img(r.current)}`,
    `  update ${s(r.timings.updateMs)}, build ${s(r.timings.prepareMs)}, qualification ${s(r.timings.qualifyMs)}, ${s(r.timings.totalMs)} in all`,
  ];
  if (r.reason) lines.push(`  why: ${r.reason}`);
  if (r.qualification) lines.push(qualificationText(r.qualification).replace(/^/gm, '  '));
  if (r.history.length) lines.push(historyTable(r.history));
  return lines.join('\n');
}
