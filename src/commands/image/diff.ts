import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { formatBytes } from '../../cli/format.js';
import { diffImages, type ImageDiff } from '../../core/query/diff.js';
import { resolveImage } from '../../core/query/resolve.js';

export default class ImageDiffCommand extends AimCommand {
  static override summary = 'Compare two images: files and packages added, removed and changed.';
  static override examples = ['<%= config.bin %> image diff gold/nginx:1 gold/nginx:2', '<%= config.bin %> image diff gold/nginx:1 gold/redis:1 --limit 0 --json'];
  static override args = {
    a: Args.string({ description: 'the older image', required: true }),
    b: Args.string({ description: 'the newer image', required: true }),
  };
  static override flags = {
    limit: Flags.integer({ description: 'paths to print per section (0: counts only)', default: 20, min: 0 }),
    mtime: Flags.boolean({ description: 'count modification-time changes as changes' }),
  };

  async run(): Promise<ImageDiff> {
    const { args, flags } = await this.parse(ImageDiffCommand);
    const repo = await this.repository(flags.repo);
    const diff = await diffImages(repo, await resolveImage(repo, args.a), await resolveImage(repo, args.b), { mtime: flags.mtime });
    const s = diff.summary;
    this.log(`files: +${s.added} -${s.removed} ~${s.changed} (${s.unchanged} unchanged); bytes +${formatBytes(s.bytesAdded)} -${formatBytes(s.bytesRemoved)}`);
    const p = diff.packages;
    this.log(`packages: +${p.added.length} -${p.removed.length} ~${p.changed.length}`);
    for (const x of p.added) this.log(`  + ${x.name} ${x.version}`);
    for (const x of p.removed) this.log(`  - ${x.name} ${x.version}`);
    for (const x of p.changed) this.log(`  ~ ${x.name} ${x.from} → ${x.to}`);
    const show = (label: string, mark: string, items: { path: string }[], extra: (i: never) => string = () => '') => {
      if (flags.limit === 0 || items.length === 0) return;
      this.log(`${label}:`);
      for (const i of items.slice(0, flags.limit)) this.log(`  ${mark} ${i.path}${extra(i as never)}`);
      if (items.length > flags.limit) this.log(`  … ${items.length - flags.limit} more (--limit, or --json for all)`);
    };
    show('added', '+', diff.added);
    show('removed', '-', diff.removed);
    show('changed', '~', diff.changed, (c: ImageDiff['changed'][number]) => ` (${c.changes.join(', ')})`);
    return diff;
  }
}
