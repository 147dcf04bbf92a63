import { Args } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { publicationProvider } from '../../cli/publication-provider.js';
import { findPublication, removePublication, type RemoveResult } from '../../core/ship/publications.js';

export default class ShipRm extends AimCommand {
  static override summary = 'Remove what a publication created (uploaded files, snapshots, AMIs, its builds), newest first.';
  static override description = `Goes through the publication's journal, newest resource first: the provider removes each one
(already gone counts as removed), aim removes the builds. The publication is then marked removed.
What cannot be removed stays in the journal with the reason: fix it and run the command again.`;
  static override examples = ['<%= config.bin %> ship rm 3f2a9c1b7d4e', '<%= config.bin %> ship rm 3f2a --json'];
  static override args = { publication: Args.string({ description: 'publication id or unique prefix (aim ship list)', required: true }) };

  async run(): Promise<RemoveResult> {
    const { args, flags } = await this.parse(ShipRm);
    const reporter = this.reporter();
    const repo = await this.repository(flags.repo);
    const p = await findPublication(repo.catalog.publications, args.publication);
    const provider = await publicationProvider(this.config, p, reporter, false);
    const result = await removePublication(repo, provider, p, { env: process.env, signal: this.abortSignal() }, reporter);
    for (const r of result.removed) this.log(`removed ${r.kind}: ${r.id}`);
    this.log(`publication ${p.id} removed (${result.removed.length} resource(s))`);
    return result;
  }
}
