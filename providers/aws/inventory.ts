import { AimError, ExitCode } from '../../src/api/provider.js';
import { ownImages, removeImage } from './ami.js';
import { awsClients, resolveCredentials, type AwsSettings } from './clients.js';
import { TAG } from './names.js';
import { REGION_SHAPE, regionError } from './region.js';

/** An AMI aim made, as `aim ship aws list` shows it. */
export interface AimAmi {
  region: string;
  ami: string;
  name: string;
  state: string;
  /** The aim image it holds (aim:image-id), its lineage (aim:name) and publication (aim:publication). */
  imageId: string;
  lineage: string;
  publication?: string;
  snapshots: string[];
  public: boolean;
  created: string;
}

/** The AMIs aim made (they carry aim:image-id) in each region, newest first per region. */
export async function listAimAmis(settings: Omit<AwsSettings, 'region'>, regions: readonly string[], env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<AimAmi[]> {
  const out: AimAmi[] = [];
  for (const region of regions) {
    if (!REGION_SHAPE.test(region)) throw regionError(`"${region}" is not an AWS region name`, 'regions look like eu-west-1');
    const clients = awsClients({ ...settings, region }, env);
    try {
      if (out.length === 0) await resolveCredentials(clients);
      for (const i of await ownImages(clients.ec2, region, [{ Name: 'tag-key', Values: [TAG.imageId] }], signal)) {
        out.push({
          region,
          ami: i.id,
          name: i.name,
          state: i.state,
          imageId: i.tags[TAG.imageId] ?? '',
          lineage: i.tags[TAG.name] ?? '',
          ...(i.tags[TAG.publication] ? { publication: i.tags[TAG.publication] } : {}),
          snapshots: i.snapshotIds,
          public: i.public,
          created: i.created,
        });
      }
    } finally {
      clients.destroy();
    }
  }
  return out;
}

/**
 * Deregisters an AMI aim made and deletes its snapshots (those no other AMI uses). An AMI without
 * aim's tags is refused: aim removes only what it made.
 */
export async function removeAimAmi(settings: AwsSettings, ami: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<{ region: string; ami: string; snapshots: string[]; kept: string[] }> {
  const clients = awsClients(settings, env);
  try {
    await resolveCredentials(clients);
    const [found] = await ownImages(clients.ec2, settings.region, [{ Name: 'image-id', Values: [ami] }], signal);
    if (!found) throw new AimError('E_AWS_NO_AMI', `no AMI ${ami} of this account in ${settings.region}`, ExitCode.notFound, { hint: 'list them with: aim ship aws list --region <region>' });
    if (!found.tags[TAG.imageId]) throw new AimError('E_AWS_NOT_AIMS', `${ami} (${found.name}) was not made by aim (it has no ${TAG.imageId} tag): not removed`, ExitCode.usage, { hint: 'remove it with the AWS console or CLI' });
    const r = await removeImage(clients.ec2, settings.region, ami, signal);
    return { region: settings.region, ami, snapshots: r.snapshots, kept: r.kept };
  } finally {
    clients.destroy();
  }
}
