import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import type { AwsFake } from './aws-fake.js';

/** The real SDK clients with their default settings, pointed at a fake's endpoints with its credentials. */
export function fakeClients(fake: AwsFake, region = 'us-east-1', extra: { maxAttempts?: number } = {}) {
  const common = { region, credentials: fake.credentials, ...extra };
  return {
    ec2: new EC2Client({ ...common, endpoint: fake.endpoints.ec2 }),
    ebs: new EBSClient({ ...common, endpoint: fake.endpoints.ebs }),
    s3: new S3Client({ ...common, endpoint: fake.endpoints.s3, forcePathStyle: true }),
  };
}
