import { AimError, ExitCode, isAimError } from '../../src/lib/errors.js';
import { errorCode, httpStatus } from './retry.js';
import { aimPolicy, vmimportPolicies } from './iam-policies.js';

const AUTH_REFUSED = new Set(['AuthFailure', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException', 'InvalidSignatureException', 'ExpiredToken', 'ExpiredTokenException', 'RequestExpired', 'InvalidAccessKeyId', 'IncompleteSignature']);
const DENIED = new Set(['UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException', 'Forbidden']);

/** Whether an error says the service role for VM Import is missing or lacks rights. */
export function isVmimportRoleProblem(e: unknown): boolean {
  const message = (e as Error | undefined)?.message ?? '';
  return /service role|vmimport/i.test(message) && /does not exist|sufficient permissions|not authorized|cannot assume/i.test(message);
}

/**
 * An AWS SDK error as an AimError that says what failed and what to do. Credentials never show:
 * AimError redacts message and hint, and the SDK's own messages carry no secrets.
 */
export function awsError(e: unknown, doing: string, context: { bucket?: string; roleName?: string } = {}): AimError {
  if (isAimError(e)) return e;
  const code = errorCode(e) ?? 'Error';
  const message = ((e as Error | undefined)?.message ?? String(e)).trim();
  const name = (e as Error | undefined)?.name;
  if (name === 'CredentialsProviderError' || /could not load credentials|credential.*(missing|not found)|profile .* could not be found/i.test(message)) {
    return new AimError('E_AWS_CREDENTIALS', `no AWS credentials to ${doing}: ${message}`, ExitCode.usage, {
      cause: e,
      hint: 'configure credentials as for the AWS CLI: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (--profile or AWS_PROFILE), `aws sso login`, or an instance role',
    });
  }
  if (AUTH_REFUSED.has(code)) {
    return new AimError('E_AWS_CREDENTIALS', `AWS refused the credentials (${code}) when trying to ${doing}: ${message}`, ExitCode.provider, {
      cause: e,
      hint: 'check the credentials and the clock; for an opt-in region, check that it is enabled for the account; for SSO, run `aws sso login` again',
    });
  }
  if (context.roleName && isVmimportRoleProblem(e)) {
    const p = vmimportPolicies(context.bucket ?? 'BUCKET');
    return new AimError('E_AWS_VMIMPORT_ROLE', `the VM Import service role "${context.roleName}" is missing or lacks rights (${code}: ${message})`, ExitCode.provider, {
      cause: e,
      hint: `create the role "${context.roleName}" with this trust policy:\n${p.trust}\nand give it this policy:\n${p.role}\ne.g. aws iam create-role --role-name ${context.roleName} --assume-role-policy-document file://trust.json && aws iam put-role-policy --role-name ${context.roleName} --policy-name vmimport --policy-document file://role.json`,
    });
  }
  if (DENIED.has(code)) {
    return new AimError('E_AWS_DENIED', `AWS denied the request to ${doing} (${code}): ${message}`, ExitCode.provider, {
      cause: e,
      hint: `the user or role running aim lacks a permission aim needs; give it this policy (examples/aws-nginx/README.md explains it):\n${aimPolicy(context.bucket, context.roleName)}`,
    });
  }
  const status = httpStatus(e);
  return new AimError('E_AWS', `AWS failed to ${doing}: ${code}${status ? ` (HTTP ${status})` : ''}: ${message}`, ExitCode.provider, {
    cause: e,
    hint: status !== undefined && status >= 500 ? 'AWS had a server error after several tries: run aim ship resume <publication> later' : 'see the AWS error above',
  });
}

/** Runs one AWS call, turning its failure into an AimError that names what aim was doing. */
export async function calling<T>(doing: string, fn: () => Promise<T>, context: { bucket?: string; roleName?: string } = {}): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if ((e as Error | undefined)?.name === 'AbortError' || isAimError(e)) throw e;
    throw awsError(e, doing, context);
  }
}
