/**
 * Credentials never leave aim in clear: every error, log line, DEBUG line and JSON document goes
 * through `redact` before it is printed. Two mechanisms work together:
 * - secrets aim knows (credential variables of the environment, what a provider was given) are
 *   replaced wherever they appear, also base64-encoded (with the user, as HTTP basic auth sends
 *   them), URL-encoded and JSON-escaped, so a server that echoes a header is caught too;
 * - patterns catch credentials aim was never told about: the user:password of a URL,
 *   Authorization headers, AWS keys and signatures, `password=…` style fields.
 */

/** What replaces a secret. */
export const REDACTED = '***';

/** Shorter values are not treated as secrets: replacing every "ab" would garble output. */
const MIN_SECRET_LENGTH = 4;

/** Environment variables whose values are secrets (AIM_VMWARE_PASSWORD, AWS_SECRET_ACCESS_KEY, …). */
const SECRET_ENV = /(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|CREDENTIALS?|_KEY|_AUTH)$/i;
const SECRET_ENV_PREFIX = /^(.*?)_?(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN)$/i;
/** Values of such variables that are settings, not secrets ("true", a port number). */
const NOT_A_SECRET = /^(true|false|yes|no|on|off|null|none|[0-9]{1,8})$/i;
/** Found in the environment by name only: a bit longer, so short settings are not taken for secrets. */
const MIN_ENV_SECRET_LENGTH = 6;

const known = new Set<string>();
let ordered: string[] | undefined;

function base64Forms(bytes: string): string[] {
  const b64 = Buffer.from(bytes, 'utf8').toString('base64');
  const url = Buffer.from(bytes, 'utf8').toString('base64url');
  return [b64, b64.replace(/=+$/, ''), url, encodeURIComponent(b64)];
}

function remember(value: string): void {
  if (value.length < MIN_SECRET_LENGTH || known.has(value)) return;
  known.add(value);
  ordered = undefined;
}

/** A secret to hide wherever it appears, in clear, base64, URL-encoded or JSON-escaped form. */
export function addSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  for (const form of [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1), ...base64Forms(value)]) remember(form);
}

/** A user and password pair: the password, and `user:password` as basic authentication encodes it. */
export function addCredentials(user: string | undefined, password: string | undefined): void {
  if (!password) return;
  addSecret(password);
  if (user) for (const form of base64Forms(`${user}:${password}`)) remember(form);
}

/** Reads the credential variables of an environment (done once for process.env on load). */
export function addSecretsFromEnv(env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!value || value.length < MIN_ENV_SECRET_LENGTH || NOT_A_SECRET.test(value) || !SECRET_ENV.test(name)) continue;
    addSecret(value);
    const prefix = SECRET_ENV_PREFIX.exec(name)?.[1];
    if (prefix === undefined) continue;
    for (const userVar of ['USER', 'USERNAME', 'USER_NAME', 'LOGIN', 'ACCESS_KEY_ID'].map((u) => (prefix ? `${prefix}_${u}` : u))) {
      if (env[userVar]) addCredentials(env[userVar], value);
    }
  }
}

const SECRET_LABEL = String.raw`(?:pass(?:word|wd|phrase)|secret|client[_-]?secret|api[_-]?key|(?:access|auth|refresh|session|security)[_-]?token|private[_-]?key|secret[_-]?access[_-]?key|x-amz-security-token|x-amz-signature|x-amz-credential)`;

/** Patterns for credentials aim was not told about; each keeps its label and hides the value. */
const PATTERNS: [RegExp, (substring: string, ...groups: string[]) => string][] = [
  // Authorization: Basic …, "authorization":"Bearer …", proxy-authorization=…, AWS4-HMAC-SHA256 Credential=…, Signature=…
  [/\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(basic|bearer|digest|negotiate|token|aws4-hmac-sha256)\s+)?[^\s"',;]+(?:,\s*\w+=[^\s"',;]+)*/gi, (_m, label: string, scheme?: string) => `${label}${scheme ? `${scheme} ` : ''}${REDACTED}`],
  // password=…, "secret": "…", AIM_VMWARE_PASSWORD=…, X-Amz-Signature=… (query strings, JSON, YAML, command lines);
  // not a file name: /etc/passwd: …
  [new RegExp(String.raw`(?<![/.\w-])([\w-]{0,40}${SECRET_LABEL}["']?\s*[:=]\s*["']?)(?!\*\*\*)[^\s"'&,;]+`, 'gi'), (_m, label: string) => `${label}${REDACTED}`],
  // a token given as a query parameter or a JSON field
  [/([?&]token=|"token"\s*:\s*")[^\s"&]+/gi, (_m, label: string) => `${label}${REDACTED}`],
  // AWS access key ids and the signature of a signed request
  [/\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{16}\b/g, () => REDACTED],
  [/\b(Signature=)[0-9a-f]{64}\b/g, (_m, label: string) => `${label}${REDACTED}`],
];

/**
 * The user information of URLs: `https://user:password@host` → `https://***@host`, also when the
 * password holds a "/" or "?" that should have been percent-encoded (user, colon, up to the last @).
 */
function redactUserinfo(text: string): string {
  return text
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:"'<>]{1,256}:[^\s@"'<>]{0,512}@/gi, (_m, scheme: string) => `${scheme}${REDACTED}@`)
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#"'<>]{0,512})/gi, (whole, scheme: string, authority: string) => {
      const at = authority.lastIndexOf('@');
      return at < 0 || authority.slice(0, at) === REDACTED ? whole : `${scheme}${REDACTED}${authority.slice(at)}`;
    });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

let knownPattern: RegExp | undefined;
const MAY_MATCH = /[:=]|A(?:KIA|SIA|ROA|IDA)/;

/** The text with every credential it holds replaced by ***. Idempotent. */
export function redact(text: string): string {
  if (!text) return text;
  let out = text;
  if (known.size > 0) {
    if (!ordered) {
      // longest first, so a secret that contains another is replaced whole
      ordered = [...known].sort((a, b) => b.length - a.length);
      knownPattern = new RegExp(ordered.map(escapeRegExp).join('|'), 'g');
    }
    out = out.replace(knownPattern!, REDACTED);
  }
  // every pattern below needs a ":" or "=" (or is an AWS key id): most strings (paths) skip them
  if (!MAY_MATCH.test(out)) return out;
  out = redactUserinfo(out);
  for (const [pattern, replace] of PATTERNS) out = out.replace(pattern, replace);
  return out;
}

/** A copy of a JSON-like value with every string redacted (keys too). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => redactDeep(v)) as T;
  if (value && typeof value === 'object' && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), redactDeep(v)])) as T;
  }
  const withToJson = value as unknown as { toJSON?: () => unknown } | null;
  if (withToJson && typeof withToJson === 'object' && typeof withToJson.toJSON === 'function') return redactDeep(withToJson.toJSON()) as T;
  return value;
}

addSecretsFromEnv(process.env);
