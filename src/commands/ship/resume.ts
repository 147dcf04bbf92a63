import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { publicationProvider } from '../../cli/publication-provider.js';
import { printShipResult } from '../../cli/ship-output.js';
import { findPublication, resumePublication } from '../../core/ship/publications.js';
import type { PublicationOutcome } from '../../core/ship/publication-run.js';

export default class ShipResume extends AimCommand {
  static override summary = 'Finish an interrupted publication from its journal (after Ctrl-C, a killed process or a failure).';
  static override description = `Runs the publication again with the options it was started with (secret ones and credentials from
the environment): the provider observes, plans, and continues where the journal says it stopped.
Builds whose files are intact are reused (also those in aim's scratch space, for a ship made
without --out: they are removed once it is published), uploads the journal shows complete are
skipped. A publication that is complete already is reported, not repeated.`;
  static override examples = ['<%= config.bin %> ship resume 3f2a9c1b7d4e', '<%= config.bin %> ship resume 3f2a --json', '<%= config.bin %> ship resume 3f2a --out build/vmware-again'];
  static override args = { publication: Args.string({ description: 'publication id or unique prefix (aim ship list)', required: true }) };
  static override flags = {
    out: Flags.string({ char: 'o', description: 'build directory, when the recorded one is gone or elsewhere [default: the recorded one, else aim’s scratch space in the repository]' }),
  };

  async run(): Promise<PublicationOutcome & { provider: string; imageId: string }> {
    const { args, flags } = await this.parse(ShipResume);
    const reporter = this.reporter();
    const repo = await this.repository(flags.repo);
    const p = await findPublication(repo.catalog.publications, args.publication);
    const provider = (await publicationProvider(this.config, p, reporter, true))!;
    const outcome = await resumePublication(repo, provider, p, { outDir: flags.out, env: process.env, signal: this.abortSignal() }, reporter);
    const result = { provider: p.provider, imageId: p.imageId, ...outcome };
    printShipResult(this, result);
    return result;
  }
}
