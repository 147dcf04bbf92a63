import { createHash } from 'node:crypto';

/** Tag keys aim puts on every AMI, snapshot and import task it makes. */
export const TAG = {
  imageId: 'aim:image-id',
  name: 'aim:name',
  publication: 'aim:publication',
  key: 'aim:idempotency-key',
  /** On an EBS snapshot: the client token it was started with (found by it when its id was never journalled). */
  token: 'aim:client-token',
} as const;

/** The image's name without its tag: "slim/nginx:1" → "slim/nginx" (the lineage of its versions). */
export function imageName(ref: string): string {
  const at = ref.lastIndexOf(':');
  const slash = ref.lastIndexOf('/');
  return at > slash ? ref.slice(0, at) : ref;
}

/** Characters EC2 allows in AMI names: letters, digits, ( ) [ ] space . / - ' @ _ */
const AMI_NAME_CHAR = /[^A-Za-z0-9()[\] ./\-'@_]/g;

/**
 * The AMI name: the lineage name (--name, else the image's name) and the image id's first 12
 * digits, in the characters EC2 allows (3 to 128). Unique per image version, stable across runs:
 * RegisterImage has no client token, so the name is what makes a repeat a duplicate.
 */
export function amiName(lineage: string, imageId: string): string {
  const base = lineage.replace(AMI_NAME_CHAR, '-').replace(/-{2,}/g, '-').slice(0, 110) || 'aim';
  return `${base}-${imageId.slice(0, 12)}`;
}

/** A client token (max 64 characters) for one step of a publication, from its idempotency key. */
export function clientToken(key: string, step: string): string {
  return createHash('sha256').update(`${key}\0${step}`).digest('hex').slice(0, 64);
}

/** Problems with user tags (`k=v`), as AWS's tag rules state them; empty when all are fine. */
export function tagProblems(tags: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const t of tags) {
    const eq = t.indexOf('=');
    if (eq <= 0) {
      problems.push(`"${t}" is not KEY=VALUE`);
      continue;
    }
    const key = t.slice(0, eq);
    const value = t.slice(eq + 1);
    if (key.length > 128) problems.push(`tag key "${key.slice(0, 20)}…" is longer than 128 characters`);
    if (value.length > 256) problems.push(`the value of tag "${key}" is longer than 256 characters`);
    if (/^aws:/i.test(key)) problems.push(`tag key "${key}": keys beginning with aws: are reserved by AWS`);
    if (/^aim:/i.test(key)) problems.push(`tag key "${key}": keys beginning with aim: are aim's own`);
    if (!/^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u.test(key) || !/^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u.test(value)) problems.push(`tag "${t}" holds characters AWS does not allow in tags (letters, digits, spaces and _ . : / = + - @)`);
    if (seen.has(key)) problems.push(`tag key "${key}" is given twice`);
    seen.add(key);
  }
  return problems;
}

/** `k=v` strings (already checked) as a record. */
export function parseTags(tags: readonly string[]): Record<string, string> {
  return Object.fromEntries(tags.map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]));
}
