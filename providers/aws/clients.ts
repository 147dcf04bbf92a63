import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { debugLog } from '../../src/lib/log.js';
import { addSecret } from '../../src/lib/redact.js';
import { awsError } from './aws-errors.js';
import { errorCode, httpStatus } from './retry.js';
import { customEndpoint, type AwsSettings } from './settings.js';

export type { AwsSettings } from './settings.js';

const debug = debugLog('aws');

interface Traced {
  middlewareStack: { add(m: (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => (a: unknown) => Promise<unknown>, o: { step: 'initialize'; name: string }): void };
}

/**
 * DEBUG=aim:aws traces every call a client makes: service, action, region, outcome, time (never
 * its parameters, headers or bodies; what does show is redacted like every DEBUG line).
 */
function traced<C>(client: C, service: string, region: string): C {
  (client as unknown as Traced).middlewareStack.add(
    (next, context) => async (args) => {
      if (!debug.enabled) return next(args);
      const started = Date.now();
      try {
        const out = await next(args);
        debug('%s %s %s: ok in %d ms', service, context.commandName ?? '?', region, Date.now() - started);
        return out;
      } catch (e) {
        debug('%s %s %s: %s%s in %d ms', service, context.commandName ?? '?', region, errorCode(e) ?? 'error', httpStatus(e) ? ` (HTTP ${httpStatus(e)})` : '', Date.now() - started);
        throw e;
      }
    },
    { step: 'initialize', name: 'aimTrace' },
  );
  return client;
}

// aim supports Node 20.19+ itself; the SDK's notice that its releases of 2027 will need Node 22
// would land in every command's stderr (set the variable to false to see it)
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface AwsClients {
  region: string;
  ec2: EC2Client;
  /** EBS direct APIs: aim retries block writes itself (withRetry), so the SDK tries once. */
  ebs: EBSClient;
  s3: S3Client;
  destroy(): void;
}

/**
 * The SDK clients for one region. Credentials come from the SDK's default chain (environment,
 * shared config and credentials files with --profile, SSO, web identity, container and instance
 * metadata); aim never takes them as options.
 */
export function awsClients(settings: AwsSettings, env: NodeJS.ProcessEnv, region = settings.region): AwsClients {
  const common = { region, ...(settings.profile ? { profile: settings.profile } : {}) };
  const endpoint = settings.endpointUrl ? { endpoint: settings.endpointUrl } : {};
  const s3Endpoint = customEndpoint('S3', settings, env);
  const ec2 = traced(new EC2Client({ ...common, ...endpoint, maxAttempts: 6 }), 'ec2', region);
  const ebs = traced(new EBSClient({ ...common, ...endpoint, maxAttempts: 1 }), 'ebs', region);
  // a custom S3 endpoint (s3rver, MinIO, LocalStack) takes path-style addressing
  const s3 = traced(new S3Client({ ...common, ...endpoint, maxAttempts: 6, ...(s3Endpoint ? { forcePathStyle: true } : {}) }), 's3', region);
  return {
    region,
    ec2,
    ebs,
    s3,
    destroy() {
      ec2.destroy();
      ebs.destroy();
      s3.destroy();
    },
  };
}

/**
 * Resolves the credentials once, before any work: a missing or broken chain fails here with a
 * clear error, and the secret key and session token are registered with lib/redact, so they are
 * hidden from every message, log and DEBUG line even when they came from a file or SSO.
 */
export async function resolveCredentials(clients: AwsClients): Promise<{ accessKeyId: string }> {
  try {
    const provider = clients.ec2.config.credentials;
    const identity = await provider();
    addSecret(identity.secretAccessKey);
    addSecret(identity.sessionToken);
    return { accessKeyId: identity.accessKeyId };
  } catch (e) {
    throw awsError(e, 'resolve AWS credentials');
  }
}
