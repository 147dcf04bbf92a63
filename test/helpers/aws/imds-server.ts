import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen } from './http-listener.js';

/**
 * An instance metadata service (IMDS) for one fake instance, on 127.0.0.1. Its guest reaches it at
 * http://169.254.169.254/ through QEMU's guestfwd (see instance-vm.ts). IMDSv2 as AWS documents
 * it: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds (1–21600) gives a token;
 * GETs carry it in X-aws-ec2-metadata-token; a missing token is 401 when the instance requires
 * IMDSv2 (HttpTokens required), a wrong or expired one always; a token PUT with X-Forwarded-For
 * is refused (403).
 */
export interface ImdsInstance {
  instanceId: string;
  imageId: string;
  instanceType: string;
  region: string;
  accountId: string;
  privateIp: string;
  httpTokens: 'required' | 'optional';
  /** The key pair of RunInstances' KeyName, as public-keys/0/openssh-key serves it. */
  publicKey?: { name: string; key: string };
  userData?: Buffer;
}

export interface ImdsRequest {
  method: string;
  path: string;
  status: number;
  /** Whether the request carried a session token. */
  token: boolean;
}

export interface ImdsServer {
  port: number;
  url: string;
  requests: ImdsRequest[];
  stop(): Promise<void>;
}

export async function startImdsServer(instance: ImdsInstance): Promise<ImdsServer> {
  const tokens = new Map<string, number>();
  const requests: ImdsRequest[] = [];
  const hostname = `ip-${instance.privateIp.replace(/\./g, '-')}.${instance.region}.compute.internal`;
  const az = `${instance.region}a`;
  const tree: Record<string, string | undefined> = {
    'meta-data/ami-id': instance.imageId,
    'meta-data/instance-id': instance.instanceId,
    'meta-data/instance-type': instance.instanceType,
    'meta-data/hostname': hostname,
    'meta-data/local-hostname': hostname,
    'meta-data/local-ipv4': instance.privateIp,
    'meta-data/placement/availability-zone': az,
    'meta-data/placement/region': instance.region,
    ...(instance.publicKey
      ? {
          'meta-data/public-keys/0/openssh-key': `${instance.publicKey.key.trim().split(/\s+/).slice(0, 2).join(' ')} ${instance.publicKey.name}\n`,
        }
      : {}),
    'dynamic/instance-identity/document': JSON.stringify(
      { accountId: instance.accountId, architecture: 'x86_64', availabilityZone: az, imageId: instance.imageId, instanceId: instance.instanceId, instanceType: instance.instanceType, privateIp: instance.privateIp, region: instance.region, version: '2017-09-30' },
      null,
      2,
    ),
  };

  const answer = (req: IncomingMessage, res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    requests.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, status, token: req.headers['x-aws-ec2-metadata-token'] !== undefined });
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), connection: 'close', ...headers });
    res.end(body);
  };

  const listener = await listen((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return answer(req, res, 405, 'Method Not Allowed');
      if (req.headers['x-forwarded-for'] !== undefined) return answer(req, res, 403, 'Forbidden');
      const ttl = String(req.headers['x-aws-ec2-metadata-token-ttl-seconds'] ?? '');
      if (!/^\d+$/.test(ttl) || Number(ttl) < 1 || Number(ttl) > 21600) return answer(req, res, 400, 'Bad Request');
      const token = randomBytes(42).toString('base64');
      tokens.set(token, Date.now() + Number(ttl) * 1000);
      return answer(req, res, 200, token, { 'x-aws-ec2-metadata-token-ttl-seconds': ttl });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(req, res, 405, 'Method Not Allowed');
    const token = req.headers['x-aws-ec2-metadata-token'];
    if (token !== undefined) {
      const until = typeof token === 'string' ? tokens.get(token) : undefined;
      if (until === undefined || until < Date.now()) return answer(req, res, 401, 'Unauthorized');
    } else if (instance.httpTokens === 'required') {
      return answer(req, res, 401, 'Unauthorized');
    }
    const rel = path.replace(/^\/latest\//, '');
    if (rel === path) return answer(req, res, 404, 'Not Found');
    if (rel === 'user-data') return instance.userData ? answer(req, res, 200, instance.userData.toString('latin1')) : answer(req, res, 404, 'Not Found');
    if (rel === 'meta-data/public-keys/' || rel === 'meta-data/public-keys') {
      return instance.publicKey ? answer(req, res, 200, `0=${instance.publicKey.name}`) : answer(req, res, 404, 'Not Found');
    }
    const value = tree[rel];
    if (value !== undefined) return answer(req, res, 200, value);
    // a directory: its entries, subdirectories with a trailing slash
    const dir = rel.endsWith('/') || rel === '' ? rel : `${rel}/`;
    const entries = new Set<string>();
    for (const key of Object.keys(tree)) {
      if (!key.startsWith(dir)) continue;
      const rest = key.slice(dir.length);
      const slash = rest.indexOf('/');
      entries.add(slash < 0 ? rest : `${rest.slice(0, slash + 1)}`);
    }
    if (dir === 'meta-data/public-keys/0/' && instance.publicKey) return answer(req, res, 200, 'openssh-key');
    if (entries.size === 0) return answer(req, res, 404, 'Not Found');
    return answer(req, res, 200, [...entries].sort().join('\n'));
  });
  return { port: listener.port, url: listener.url, requests, stop: () => listener.close() };
}
