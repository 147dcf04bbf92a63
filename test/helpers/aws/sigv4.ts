import type { IncomingHttpHeaders } from 'node:http';

/** What a well-formed Signature Version 4 Authorization header says about the caller. */
export interface SigV4Scope {
  accessKeyId: string;
  /** yyyymmdd of the credential scope. */
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
}

/** Why a request's signature was refused, as AWS names it (the servers turn it into their own error shape). */
export interface SigV4Problem {
  code: 'MissingAuthenticationToken' | 'IncompleteSignature' | 'SignatureDoesNotMatch';
  message: string;
}

const CREDENTIAL = /^([A-Z0-9]{1,128})\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request$/i;

/**
 * Checks the shape of a SigV4 `Authorization` header (any credentials are accepted; the signature
 * itself cannot be checked without the secret): the algorithm, Credential with its scope,
 * SignedHeaders naming host and x-amz-date, a 64-hex-digit Signature, and an X-Amz-Date header of
 * the scope's day. `service` is the signing name the endpoint expects (ec2, ebs).
 */
export function parseSigV4(headers: IncomingHttpHeaders, service: string): SigV4Scope | SigV4Problem {
  const auth = headers.authorization;
  if (auth === undefined || auth === '') return { code: 'MissingAuthenticationToken', message: 'Request is missing Authentication Token' };
  const space = auth.indexOf(' ');
  const algorithm = space < 0 ? auth : auth.slice(0, space);
  if (algorithm !== 'AWS4-HMAC-SHA256') return { code: 'IncompleteSignature', message: `Unsupported AWS 'algorithm': '${algorithm}'` };
  const fields = new Map<string, string>();
  for (const part of auth.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((f) => !fields.get(f));
  if (missing.length > 0) {
    const said = missing.map((f) => `Authorization header requires '${f}' parameter.`).join(' ');
    return { code: 'IncompleteSignature', message: `${said} Authorization=${auth}` };
  }
  const credential = CREDENTIAL.exec(fields.get('Credential')!);
  if (!credential) return { code: 'IncompleteSignature', message: `Credential should be scoped to a valid region. Credential=${fields.get('Credential')}` };
  const [, accessKeyId, date, region, scopeService] = credential as unknown as [string, string, string, string, string];
  if (scopeService !== service) return { code: 'SignatureDoesNotMatch', message: `Credential should be scoped to correct service: '${service}'.` };
  if (!/^[0-9a-f]{64}$/.test(fields.get('Signature')!)) return { code: 'IncompleteSignature', message: 'Signature must be 64 hexadecimal characters' };
  const signedHeaders = fields.get('SignedHeaders')!.split(';');
  if (!signedHeaders.includes('host')) return { code: 'SignatureDoesNotMatch', message: "'Host' must be a signed header" };
  const amzDate = headers['x-amz-date'];
  if (typeof amzDate !== 'string' || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    return { code: 'IncompleteSignature', message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header." };
  }
  if (!signedHeaders.includes('x-amz-date')) return { code: 'SignatureDoesNotMatch', message: "'X-Amz-Date' must be a signed header" };
  if (amzDate.slice(0, 8) !== date) return { code: 'SignatureDoesNotMatch', message: `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${date}' != '${amzDate.slice(0, 8)}'` };
  return { accessKeyId, date, region, service: scopeService, signedHeaders };
}

export function isSigV4Problem(x: SigV4Scope | SigV4Problem): x is SigV4Problem {
  return 'code' in x;
}
