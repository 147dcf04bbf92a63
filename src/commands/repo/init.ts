import { AimCommand } from '../../cli/base-command.js';
import { initRepository } from '../../core/repository/repository.js';

export default class RepoInit extends AimCommand {
  static override summary = 'Create an aim repository (object store + catalog).';
  static override description = 'Idempotent: running it on an existing repository only checks that it opens.';
  static override examples = ['<%= config.bin %> repo init', '<%= config.bin %> repo init --repo /srv/aim', 'AIM_REPO=/srv/aim <%= config.bin %> repo init --json'];

  async run(): Promise<{ root: string; created: boolean }> {
    const { flags } = await this.parse(RepoInit);
    const result = await initRepository(this.repoPath(flags.repo));
    this.log(`${result.created ? 'created' : 'already a repository:'} ${result.root}`);
    return result;
  }
}
