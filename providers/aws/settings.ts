import type { ShipImage } from '../../src/api/provider.js';
import { amiName, imageName } from './names.js';
import type { AwsOptions } from './options.js';
import { resolveRegion } from './region.js';

/** How aim reaches AWS: the region, the profile and endpoints that replace AWS's own. */
export interface AwsSettings {
  region: string;
  profile?: string | undefined;
  /** --endpoint-url: every service at this URL (LocalStack-style). */
  endpointUrl?: string | undefined;
}

/**
 * The endpoint of a service when it is not AWS's own: --endpoint-url, else the SDK's
 * AWS_ENDPOINT_URL_<SERVICE> and AWS_ENDPOINT_URL variables (which the SDK also reads itself).
 */
export function customEndpoint(service: 'EC2' | 'EBS' | 'S3', settings: Pick<AwsSettings, 'endpointUrl'>, env: NodeJS.ProcessEnv): string | undefined {
  return settings.endpointUrl ?? env[`AWS_ENDPOINT_URL_${service}`] ?? env.AWS_ENDPOINT_URL ?? undefined;
}

/** The lineage of versions an AMI belongs to: --name, else the image's name ("slim/nginx"). */
export const lineageOf = (options: Pick<AwsOptions, 'name'>, image: ShipImage) => options.name ?? imageName(image.ref);

/** How to reach AWS for these options (the region resolved from flag, environment or profile). */
export function settingsOf(options: Partial<Pick<AwsOptions, 'region' | 'profile' | 'endpoint-url'>>, env: NodeJS.ProcessEnv): AwsSettings {
  return { region: resolveRegion(options, env), ...(options.profile ? { profile: options.profile } : {}), ...(options['endpoint-url'] ? { endpointUrl: options['endpoint-url'] } : {}) };
}

/**
 * Where a ship goes, canonically: the region (and the EC2 endpoint when it is not AWS's), the AMI
 * name, and what makes the AMI itself differ (architecture, boot mode, NitroTPM, encryption).
 * Tags, copies and sharing are not part of it: shipping again with more of them completes the
 * same publication.
 */
export function targetOf(options: AwsOptions, image: ShipImage, env: NodeJS.ProcessEnv): string {
  const s = settingsOf(options, env);
  const endpoint = customEndpoint('EC2', s, env);
  const encryption = options.encrypted ? ` encrypted${options['kms-key-id'] ? `:${options['kms-key-id']}` : ''}` : '';
  return `${s.region}${endpoint ? ` via ${endpoint}` : ''} ami ${amiName(lineageOf(options, image), image.id)} ${options.arch} ${options['boot-mode']}${options.tpm ? ' tpm' : ''}${encryption}`;
}
