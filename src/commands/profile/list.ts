import { AimCommand } from '../../cli/base-command.js';
import { shortId, table } from '../../cli/format.js';
import type { ProfileRecord } from '../../core/repository/types.js';

export default class ProfileList extends AimCommand {
  static override summary = 'List recorded profiles.';
  static override examples = ['<%= config.bin %> profile list', '<%= config.bin %> profile list --json'];

  async run(): Promise<{ profiles: Pick<ProfileRecord, 'name' | 'imageId' | 'createdAt' | 'updatedAt'>[] }> {
    const { flags } = await this.parse(ProfileList);
    const profiles = await (await this.repository(flags.repo)).catalog.listProfiles();
    this.log(table(['NAME', 'IMAGE', 'UPDATED'], profiles.map((p) => [p.name, shortId(p.imageId), p.updatedAt.slice(0, 19)])));
    return { profiles };
  }
}
