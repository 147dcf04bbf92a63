import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { shortId } from '../../cli/format.js';
import type { ProfileRecord } from '../../core/repository/types.js';
import { NotFoundError } from '../../lib/errors.js';

export default class ProfileShow extends AimCommand {
  static override summary = 'Show a profile: the paths a workload used, with their evidence.';
  static override examples = ['<%= config.bin %> profile show web', '<%= config.bin %> profile show web --all --json'];
  static override args = { name: Args.string({ description: 'profile name', required: true }) };
  static override flags = { all: Flags.boolean({ description: 'also list paths that were looked for but missing' }) };

  async run(): Promise<ProfileRecord> {
    const { args, flags } = await this.parse(ProfileShow);
    const profile = await (await this.repository(flags.repo)).catalog.getProfile(args.name);
    if (!profile) throw new NotFoundError(`no profile "${args.name}"`, { hint: 'list profiles with: aim profile list' });
    this.log(`profile ${profile.name}: image ${shortId(profile.imageId)}, ${profile.runs.length} run(s), ${profile.paths.length} paths`);
    for (const p of profile.paths) {
      if (!p.ok && !flags.all) continue;
      this.log(`${p.ok ? (p.exec ? 'exec ' : 'used ') : 'miss '} ${p.path}  (${p.syscalls.join(',')}${p.errors.length ? `; ${p.errors.join(',')}` : ''})`);
    }
    return profile;
  }
}
