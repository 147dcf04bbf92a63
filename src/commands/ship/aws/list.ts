import { Flags } from '@oclif/core';
import type { AimAmi } from '../../../../providers/aws/inventory.js';
import { givenRegion, noRegionError } from '../../../../providers/aws/region.js';
import { AimCommand } from '../../../cli/base-command.js';
import { shortId, table } from '../../../cli/format.js';
import { listPublications } from '../../../core/ship/publications.js';

export default class ShipAwsList extends AimCommand {
  static override summary = 'List the AMIs aim made, per region, with the image each one holds.';
  static override description = `Asks EC2 for the account's AMIs that carry aim's tags (aim:image-id, aim:name, aim:publication) in
each region: --region (repeatable), else the default region (AWS_REGION or the profile's) and every
region this repository's aws publications went to.`;
  static override examples = ['<%= config.bin %> ship aws list', '<%= config.bin %> ship aws list --region eu-west-1 --region us-east-1 --json'];
  static override flags = {
    region: Flags.string({ description: 'region to list (repeatable)', multiple: true }),
    profile: Flags.string({ description: 'named profile of the shared AWS config files', env: 'AWS_PROFILE' }),
    'endpoint-url': Flags.string({ description: 'send every AWS call to this endpoint' }),
  };

  async run(): Promise<{ amis: AimAmi[] }> {
    const { flags } = await this.parse(ShipAwsList);
    const settings = { ...(flags.profile ? { profile: flags.profile } : {}), ...(flags['endpoint-url'] ? { endpointUrl: flags['endpoint-url'] } : {}) };
    let regions = flags.region ?? [];
    if (regions.length === 0) {
      const published = await listPublications(await this.repository(flags.repo), { provider: 'aws' });
      const journalled = published.flatMap((p) => p.resources.filter((r) => r.kind === 'ami' && r.location).map((r) => r.location!));
      const given = givenRegion({ profile: flags.profile }, process.env);
      regions = [...new Set([...(given ? [given] : []), ...journalled])];
      if (regions.length === 0) throw noRegionError(flags.profile, process.env);
    }
    // the AWS SDK is loaded when the command runs, not when oclif lists the commands
    const { listAimAmis } = await import('../../../../providers/aws/inventory.js');
    const amis = await listAimAmis(settings, regions, process.env, this.abortSignal());
    const rows = amis.map((a) => [a.region, a.ami, a.name, a.state, shortId(a.imageId), a.publication ?? '-', a.public ? 'public' : '']);
    this.log(rows.length > 0 ? table(['REGION', 'AMI', 'NAME', 'STATE', 'IMAGE', 'PUBLICATION', ''], rows) : `no AMIs made by aim in ${regions.join(', ')}`);
    return { amis };
  }
}
