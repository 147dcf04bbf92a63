import { Args, Flags } from '@oclif/core';
import { settingsOf } from '../../../../providers/aws/settings.js';
import { AimCommand } from '../../../cli/base-command.js';
import { publicationProvider } from '../../../cli/publication-provider.js';
import { listPublications, removePublication } from '../../../core/ship/publications.js';

interface RmResult {
  ami: string;
  region: string;
  /** The publication that made it, removed whole (AMI, snapshots, copies, builds), when this repository holds it. */
  publication?: string;
  removed: { kind: string; id: string }[];
  kept: string[];
}

export default class ShipAwsRm extends AimCommand {
  static override summary = 'Deregister an AMI aim made and delete its snapshots.';
  static override description = `When this repository's journal holds the AMI, its publication is removed whole (the AMI, its
snapshots, its copies in other regions, the S3 objects and builds it still holds), as aim ship rm does.
Otherwise the AMI must carry aim's tags (an AMI aim made elsewhere): it is deregistered and its
snapshots deleted (those no other AMI uses). AMIs aim did not make are refused.`;
  static override examples = ['<%= config.bin %> ship aws rm ami-0123456789abcdef0 --region eu-west-1'];
  static override args = { ami: Args.string({ description: 'AMI id (ami-…)', required: true }) };
  static override flags = {
    region: Flags.string({ description: 'region of the AMI (default: the journal’s, AWS_REGION or the profile’s)' }),
    profile: Flags.string({ description: 'named profile of the shared AWS config files', env: 'AWS_PROFILE' }),
    'endpoint-url': Flags.string({ description: 'send every AWS call to this endpoint' }),
  };

  async run(): Promise<RmResult> {
    const { args, flags } = await this.parse(ShipAwsRm);
    const reporter = this.reporter();
    const repo = await this.repository(flags.repo);
    const signal = this.abortSignal();
    const holder = (await listPublications(repo, { provider: 'aws' })).find((p) => p.resources.some((r) => r.kind === 'ami' && r.id === args.ami && r.state !== 'removed' && (!flags.region || r.location === flags.region)));
    if (holder) {
      const p = (await repo.catalog.publications.get(holder.id))!;
      const result = await removePublication(repo, await publicationProvider(this.config, p, reporter, true), p, { env: process.env, signal }, reporter);
      for (const r of result.removed) this.log(`removed ${r.kind}: ${r.id}${r.location ? ` (${r.location})` : ''}`);
      const region = holder.resources.find((r) => r.id === args.ami)!.location ?? '';
      return { ami: args.ami, region, publication: holder.id, removed: result.removed.map((r) => ({ kind: r.kind, id: r.id })), kept: [] };
    }
    const settings = settingsOf({ region: flags.region, profile: flags.profile, 'endpoint-url': flags['endpoint-url'] }, process.env);
    const { removeAimAmi } = await import('../../../../providers/aws/inventory.js');
    const r = await removeAimAmi(settings, args.ami, process.env, signal);
    this.log(`deregistered ${r.ami} in ${r.region}${r.snapshots.length ? `, deleted ${r.snapshots.join(', ')}` : ''}${r.kept.length ? `; kept ${r.kept.join(', ')} (another AMI uses it)` : ''}`);
    return { ami: r.ami, region: r.region, removed: [{ kind: 'ami', id: r.ami }, ...r.snapshots.map((id) => ({ kind: 'snapshot', id }))], kept: r.kept };
  }
}
