import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { formatBytes, formatCount, shortId, table } from '../cli/format.js';
import { resolveImage } from '../core/query/resolve.js';
import { slimImage, type SlimResult } from '../core/slim/compose.js';

export default class Slim extends AimCommand {
  static override summary = 'Compose a slim image from a gold image and a profile: only what the workload needs.';
  static override description = `The profile's traced paths seed a static closure (ELF interpreter and libraries, shebang
interpreters, symlink chains and parent directories, NSS modules, CA certificates, time zone).
The slim image is a new manifest of exactly those entries; its report of removed files by
package and size is kept with it. --explain says why any path is kept or dropped.`;
  static override examples = [
    '<%= config.bin %> slim gold/nginx:1 --profile web --tag slim/nginx:1',
    '<%= config.bin %> slim gold/nginx:1 --profile web --tag slim/nginx:1 --explain /usr/lib/x86_64-linux-gnu/libssl.so.3 --explain /usr/bin/perl',
    '<%= config.bin %> slim gold/py:1 --profile app --keep "/usr/lib/python3*/**" --drop "**/__pycache__/**" --tag slim/py:1 --json',
  ];
  static override args = { image: Args.string({ description: 'gold image (name:tag or id)', required: true }) };
  static override flags = {
    profile: Flags.string({ description: 'profile recorded with aim profile run', required: true }),
    tag: Flags.string({ char: 't', description: 'name:tag for the slim image (repeatable)', multiple: true, default: [] }),
    explain: Flags.string({ description: 'say why this path is kept or dropped (repeatable)', multiple: true, default: [] }),
    'keep-package': Flags.string({ description: 'keep every file of this package (repeatable)', multiple: true, default: [] }),
    keep: Flags.string({ description: 'keep paths matching this glob (repeatable)', multiple: true, default: [] }),
    drop: Flags.string({ description: 'drop paths matching this glob unless the workload needs them (repeatable)', multiple: true, default: [] }),
  };

  async run(): Promise<SlimResult> {
    const { args, flags } = await this.parse(Slim);
    const repo = await this.repository(flags.repo);
    const result = await slimImage(
      repo,
      {
        goldId: await resolveImage(repo, args.image),
        profile: flags.profile,
        tags: flags.tag,
        rules: { keepPackages: flags['keep-package'], keepGlobs: flags.keep, dropGlobs: flags.drop },
        explain: flags.explain,
      },
      this.reporter(),
    );
    const r = result.report;
    this.log(
      table(
        ['', 'FILES', 'BYTES', 'ENTRIES'],
        [
          ['gold', formatCount(r.gold.files), formatBytes(r.gold.bytes), formatCount(r.gold.entries)],
          ['slim', formatCount(r.slim.files), formatBytes(r.slim.bytes), formatCount(r.slim.entries)],
        ],
      ),
    );
    this.log(`slim image ${shortId(result.id)} ${result.tags.join(' ')}: ${(r.gold.bytes / Math.max(1, r.slim.bytes)).toFixed(1)}x smaller`);
    this.log(`removed most from: ${r.removedByPackage.slice(0, 6).map((p) => `${p.package} ${formatBytes(p.bytes)}`).join(', ')}`);
    for (const e of result.explanations) {
      this.log(`\n${e.path}: ${e.kept ? 'kept' : e.dropBy ? `dropped (${e.dropBy})` : 'not kept'}${e.packages?.length ? ` [${e.packages.join(', ')}]` : ''}`);
      for (const why of e.reasons) this.log(`  - ${why}`);
    }
    return result;
  }
}
