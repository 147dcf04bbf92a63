import { Args } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { table } from '../../cli/format.js';
import { imageHistory, type HistoryStep, type ImageHistory } from '../../core/lifecycle/history.js';

function row(s: HistoryStep): string[] {
  const change =
    s.how === 'update' || s.how === 'reslim'
      ? `${s.how === 'reslim' ? `slim of ${s.goldRef ?? s.gold?.slice(0, 12)}: ` : ''}${(s.packages ?? []).map((p) => `${p.name} ${p.from} → ${p.to}`).join(', ')}${s.scriptsAccepted ? ' (scripts accepted)' : ''}`
      : s.how === 'slim'
        ? `slim of ${s.goldRef ?? s.gold?.slice(0, 12) ?? '?'} by profile ${s.profile ?? '?'}`
        : s.how === 'import'
          ? (s.source ?? '')
          : '(removed from the repository)';
  return [s.id.slice(0, 12), s.tags.join(' ') || '-', s.how, change, s.actor ?? '-', s.at ?? '-'];
}

export default class ImageHistoryCommand extends AimCommand {
  static override summary = 'Show the lineage of an image: parent, update, who and when.';
  static override description = `The image first, then each version it was made from, back to the one imported (or slimmed by
hand): aim update's new gold versions name the packages they replaced, the slim images it made
again name their new gold. Versions made from the image since are listed after it. NAME is an
image (name:tag or id) or a name whose numbered tags are its versions (gold/nginx: the newest).`;
  static override examples = [
    '<%= config.bin %> image history gold/nginx:3',
    '<%= config.bin %> image history slim/nginx',
    '<%= config.bin %> image history 3f2a9c1d --json',
  ];
  static override args = { name: Args.string({ description: 'image (name:tag or id), or an image name (its newest version)', required: true }) };

  async run(): Promise<ImageHistory> {
    const { args, flags } = await this.parse(ImageHistoryCommand);
    const repo = await this.repository(flags.repo);
    const h = await imageHistory(repo, args.name);
    this.log(table(['IMAGE', 'TAGS', 'MADE BY', 'CHANGE', 'WHO', 'WHEN'], h.lineage.map(row)));
    if (h.newer.length > 0) this.log(`\nnewer versions made from it:\n${table(['IMAGE', 'TAGS', 'MADE BY', 'CHANGE', 'WHO', 'WHEN'], h.newer.map(row))}`);
    return h;
  }
}
