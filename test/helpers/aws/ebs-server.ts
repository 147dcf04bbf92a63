import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { newId, type AwsState, type SnapshotRecord } from './aws-state.js';
import { BLOCKS_PER_GIB, EBS_BLOCK_SIZE } from './block-store.js';
import { applyBefore, Faults, type FaultEffect } from './faults.js';
import { listen, readBody, type Listener } from './http-listener.js';
import { isSigV4Problem, parseSigV4 } from './sigv4.js';
import { Traffic } from './traffic.js';

/**
 * The EBS direct APIs (REST, JSON) on 127.0.0.1, as the EBS API reference describes them:
 * StartSnapshot, PutSnapshotBlock, CompleteSnapshot, ListSnapshotBlocks, ListChangedBlocks and
 * GetSnapshotBlock, with their paths, x-amz-* headers, status codes and error types. Snapshots live
 * in the shared AwsState, so the fake EC2 server's DescribeSnapshots sees them.
 */

export interface EbsServerOptions {
  /** Milliseconds a CompleteSnapshot takes to seal the snapshot (EC2 shows it pending meanwhile). */
  sealDelayMs?: number;
  /** Length of a "minute" for StartSnapshot's Timeout (tests shorten it; default 60000). */
  minuteMs?: number;
}

export class EbsError extends Error {
  constructor(
    readonly type: string,
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

const validation = (reason: string, message: string) => new EbsError('ValidationException', 400, message, reason);
const snapshotNotFound = (id: string) => new EbsError('ResourceNotFoundException', 404, `The snapshot '${id}' does not exist.`, 'SNAPSHOT_NOT_FOUND');

const KMS_ARN = /^arn:aws[a-z-]*:kms:.*:[0-9]{12}:key\//;

export class EbsServer {
  readonly faults = new Faults();
  readonly traffic = new Traffic();
  /** Every call, in order: action, block index, the signer's region, and the error type when it failed. */
  readonly calls: { action: string; blockIndex?: number; region?: string; error?: string }[] = [];
  private listener?: Listener;
  private sweeper?: NodeJS.Timeout;
  private readonly sealDelayMs: number;
  private readonly minuteMs: number;
  private readonly pendingSeals = new Set<NodeJS.Timeout>();

  constructor(
    private readonly state: AwsState,
    options: EbsServerOptions = {},
  ) {
    this.sealDelayMs = options.sealDelayMs ?? 100;
    this.minuteMs = options.minuteMs ?? 60_000;
  }

  get url(): string {
    if (!this.listener) throw new Error('the EBS server is not started');
    return this.listener.url;
  }

  async start(): Promise<string> {
    this.listener = await listen((req, res) => void this.handle(req, res));
    this.traffic.watch(this.listener.server);
    this.sweeper = setInterval(() => this.cancelTimedOut(), Math.max(50, this.minuteMs / 4));
    this.sweeper.unref();
    return this.listener.url;
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const t of this.pendingSeals) clearTimeout(t);
    await this.listener?.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const url = new URL(req.url ?? '/', 'http://ebs');
    const route = this.route(req.method ?? '', url.pathname);
    const action = route?.action ?? 'Unknown';
    const blockIndex = route?.blockIndex;
    let bodyBytes = 0;
    let failed = true;
    const call: { action: string; blockIndex?: number; region?: string; error?: string } = { action, ...(blockIndex === undefined ? {} : { blockIndex }) };
    try {
      // the whole request arrives first (its bytes count as sent, whatever the answer)
      const { body, tooLarge, size } = await readBody(req, action === 'PutSnapshotBlock' ? EBS_BLOCK_SIZE : 1 << 20);
      bodyBytes = size;
      const effects = this.faults.take(action, blockIndex);
      if (await applyBefore(effects, req.socket, faultError)) return;
      const scope = parseSigV4(req.headers, 'ebs');
      if (isSigV4Problem(scope)) {
        const status = scope.code === 'IncompleteSignature' ? 400 : 403;
        throw new EbsError(scope.code === 'SignatureDoesNotMatch' ? 'InvalidSignatureException' : `${scope.code}Exception`, status, scope.message);
      }
      call.region = scope.region;
      if (!this.state.regionEnabled(scope.region)) throw new EbsError('UnrecognizedClientException', 403, 'The security token included in the request is invalid.');
      if (!route) throw new EbsError('UnknownOperationException', 404, `No operation for ${req.method} ${url.pathname}`);
      if (tooLarge) throw validation('INVALID_PARAMETER_VALUE', 'Failed to read block data');
      const answer = await this.act(route, scope.region, req, url, body);
      if (effects.some((e) => e.kind === 'drop')) {
        req.socket.destroy();
        return;
      }
      failed = false;
      res.writeHead(answer.status, { 'x-amzn-RequestId': requestId, ...answer.headers });
      res.end(answer.body);
    } catch (e) {
      call.error = e instanceof EbsError ? e.type : 'InternalServerException';
      if (!(e instanceof EbsError)) {
        res.writeHead(500, { 'x-amzn-RequestId': requestId, 'x-amzn-ErrorType': 'InternalServerException', 'content-type': 'application/json' });
        res.end(JSON.stringify({ Message: `fake EBS failed: ${(e as Error).message}` }));
        return;
      }
      const doc: Record<string, string> = { Message: e.message };
      if (e.reason) doc.Reason = e.reason;
      res.writeHead(e.status, { 'x-amzn-RequestId': requestId, 'x-amzn-ErrorType': e.type, 'content-type': 'application/json' });
      res.end(JSON.stringify(doc));
    } finally {
      if (failed && !call.error) call.error = 'dropped';
      this.calls.push(call);
      this.traffic.count(action, bodyBytes, failed);
    }
  }

  private route(method: string, path: string): { action: string; snapshotId?: string; blockIndex?: number; rawIndex?: string } | undefined {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== 'snapshots') return undefined;
    if (method === 'POST' && parts.length === 1) return { action: 'StartSnapshot' };
    if (method === 'POST' && parts.length === 3 && parts[1] === 'completion') return { action: 'CompleteSnapshot', snapshotId: parts[2] };
    if (method === 'GET' && parts.length === 3 && parts[2] === 'blocks') return { action: 'ListSnapshotBlocks', snapshotId: parts[1] };
    if (method === 'GET' && parts.length === 3 && parts[2] === 'changedblocks') return { action: 'ListChangedBlocks', snapshotId: parts[1] };
    if (parts.length === 4 && parts[2] === 'blocks' && (method === 'GET' || method === 'PUT')) {
      const n = /^\d+$/.test(parts[3]!) ? Number(parts[3]) : undefined;
      return { action: method === 'PUT' ? 'PutSnapshotBlock' : 'GetSnapshotBlock', snapshotId: parts[1], blockIndex: n, rawIndex: parts[3] };
    }
    return undefined;
  }

  private async act(route: NonNullable<ReturnType<EbsServer['route']>>, region: string, req: IncomingMessage, url: URL, body: Buffer): Promise<Answer> {
    switch (route.action) {
      case 'StartSnapshot':
        return this.startSnapshot(region, parseJson(body));
      case 'PutSnapshotBlock':
        return this.putBlock(region, route.snapshotId!, route.rawIndex!, req, body);
      case 'CompleteSnapshot':
        return this.complete(region, route.snapshotId!, req);
      case 'ListSnapshotBlocks':
        return this.listBlocks(region, route.snapshotId!, url);
      case 'ListChangedBlocks':
        return this.listChanged(region, route.snapshotId!, url);
      case 'GetSnapshotBlock':
        return this.getBlock(region, route.snapshotId!, route.rawIndex!, url);
    }
    throw new EbsError('UnknownOperationException', 404, `unknown operation ${route.action}`);
  }

  private startSnapshot(region: string, input: Record<string, unknown>): Answer {
    const { VolumeSize, ParentSnapshotId, Tags, Description, ClientToken, Encrypted, KmsKeyArn, Timeout } = input;
    if (VolumeSize === undefined) throw validation('INVALID_PARAMETER_VALUE', 'VolumeSize is required');
    if (!Number.isInteger(VolumeSize) || (VolumeSize as number) < 1 || (VolumeSize as number) > 65536) throw validation('INVALID_VOLUME_SIZE', `Volume size ${String(VolumeSize)} GiB is not between 1 and 65536 GiB`);
    if (Timeout !== undefined && (!Number.isInteger(Timeout) || (Timeout as number) < 10 || (Timeout as number) > 60)) throw validation('INVALID_PARAMETER_VALUE', 'Timeout must be between 10 and 60 minutes');
    if (Description !== undefined && (typeof Description !== 'string' || Description.length > 255)) throw validation('INVALID_PARAMETER_VALUE', 'Description must be at most 255 characters');
    const tags = parseTags(Tags);
    if (KmsKeyArn !== undefined && (typeof KmsKeyArn !== 'string' || !KMS_ARN.test(KmsKeyArn))) throw validation('INVALID_PARAMETER_VALUE', 'KmsKeyArn is not a valid KMS key ARN');
    if (Encrypted !== undefined && typeof Encrypted !== 'boolean') throw validation('INVALID_PARAMETER_VALUE', 'Encrypted must be a boolean');
    if (ClientToken !== undefined && (typeof ClientToken !== 'string' || ClientToken.length > 255)) throw validation('INVALID_PARAMETER_VALUE', 'ClientToken is not valid');
    const fingerprint = JSON.stringify({ VolumeSize, ParentSnapshotId, Tags, Description, Encrypted, KmsKeyArn, Timeout });
    const tokenKey = ClientToken === undefined ? undefined : `${region}/StartSnapshot/${ClientToken}`;
    if (tokenKey) {
      const seen = this.state.clientTokens.get(tokenKey);
      if (seen && seen.fingerprint !== fingerprint) throw new EbsError('ConflictException', 503, 'The request uses the same client token as a previous, but non-identical request.');
      const earlier = seen && this.state.snapshots.get(seen.result as string);
      if (earlier) return json(201, describeSnapshot(earlier, this.state.accountId));
    }
    let parent: SnapshotRecord | undefined;
    if (ParentSnapshotId !== undefined) {
      if (typeof ParentSnapshotId !== 'string' || !/^snap-[0-9a-f]+$/.test(ParentSnapshotId)) throw validation('INVALID_SNAPSHOT_ID', `The parent snapshot ID '${String(ParentSnapshotId)}' is not valid`);
      parent = this.state.snapshots.get(ParentSnapshotId);
      if (!parent || parent.region !== region) throw snapshotNotFound(ParentSnapshotId);
      if (parent.state !== 'completed') throw validation('INVALID_SNAPSHOT_ID', `The parent snapshot '${ParentSnapshotId}' is not completed`);
      if ((VolumeSize as number) < parent.volumeSize) throw validation('INVALID_VOLUME_SIZE', `Volume size ${String(VolumeSize)} GiB is smaller than the parent snapshot's ${parent.volumeSize} GiB`);
      if (Encrypted === false && parent.encrypted) throw validation('INVALID_PARAMETER_VALUE', 'The parent snapshot is encrypted: a snapshot of its lineage cannot be unencrypted');
      if (Encrypted === true && !parent.encrypted) throw validation('INVALID_PARAMETER_VALUE', 'The parent snapshot is not encrypted: create an encrypted copy of it first (CopySnapshot)');
      if (KmsKeyArn !== undefined && KmsKeyArn !== parent.kmsKeyArn) throw validation('INVALID_PARAMETER_VALUE', 'A snapshot with a parent is encrypted with the key of its parent: omit KmsKeyArn');
    }
    const encrypted = parent ? parent.encrypted : Encrypted === true;
    const id = newId('snap');
    const snapshot: SnapshotRecord = {
      id,
      region,
      ownerId: this.state.accountId,
      state: 'pending',
      sealing: false,
      volumeSize: VolumeSize as number,
      ...(typeof Description === 'string' ? { description: Description } : {}),
      startTime: new Date(),
      encrypted,
      ...(encrypted ? { kmsKeyArn: parent?.kmsKeyArn ?? (KmsKeyArn as string | undefined) ?? `arn:aws:kms:${region}:${this.state.accountId}:key/aws-ebs-default` } : {}),
      ...(parent ? { parentId: parent.id } : {}),
      lineage: parent?.lineage ?? id,
      // the new snapshot starts as its parent's blocks; blocks written now replace them
      blocks: new Map(parent?.blocks ?? []),
      written: new Set(),
      origin: 'ebs-direct',
      ...(parent?.noiseKey ? { noiseKey: parent.noiseKey } : !parent && encrypted ? { noiseKey: id } : {}),
      timeoutMinutes: (Timeout as number | undefined) ?? 60,
      lastActivity: Date.now(),
      progress: 0,
      tags,
    };
    this.state.snapshots.set(id, snapshot);
    if (tokenKey) this.state.clientTokens.set(tokenKey, { fingerprint, result: id });
    return json(201, describeSnapshot(snapshot, this.state.accountId));
  }

  private pendingSnapshot(region: string, id: string): SnapshotRecord {
    const s = this.state.snapshots.get(id);
    if (!s || s.region !== region) throw snapshotNotFound(id);
    if (s.state !== 'pending' || s.sealing) throw validation('INVALID_SNAPSHOT_ID', `The snapshot '${id}' is not in the pending state (it is ${s.sealing && s.state === 'pending' ? 'being completed' : s.state}); blocks can be written only to a pending snapshot`);
    return s;
  }

  private async putBlock(region: string, id: string, rawIndex: string, req: IncomingMessage, body: Buffer): Promise<Answer> {
    const s = this.pendingSnapshot(region, id);
    const index = blockIndex(rawIndex, s);
    const length = header(req, 'x-amz-data-length');
    if (length === undefined) throw validation('INVALID_PARAMETER_VALUE', 'x-amz-Data-Length is required');
    if (length !== String(EBS_BLOCK_SIZE)) throw validation('INVALID_PARAMETER_VALUE', `DataLength ${length} is not valid: the only supported size is ${EBS_BLOCK_SIZE} bytes`);
    const algorithm = header(req, 'x-amz-checksum-algorithm');
    const checksum = header(req, 'x-amz-checksum');
    if (checksum === undefined || algorithm === undefined) throw validation('INVALID_PARAMETER_VALUE', 'x-amz-Checksum and x-amz-Checksum-Algorithm are required');
    if (algorithm !== 'SHA256') throw validation('INVALID_PARAMETER_VALUE', `Checksum algorithm ${algorithm} is not supported; use SHA256`);
    const progress = header(req, 'x-amz-progress');
    if (progress !== undefined && !(/^\d+$/.test(progress) && Number(progress) <= 100)) throw validation('INVALID_PARAMETER_VALUE', 'Progress must be between 0 and 100');
    if (body.length !== EBS_BLOCK_SIZE) throw validation('INVALID_PARAMETER_VALUE', 'Failed to read block data');
    const digest = createHash('sha256').update(body).digest();
    if (digest.toString('base64') !== checksum) throw validation('INVALID_PARAMETER_VALUE', 'The checksum of the block data does not match the x-amz-Checksum header');
    const sha256 = await this.state.blocks.put(body, digest);
    s.blocks.set(index, { sha256, writer: s.id });
    s.written.add(index);
    s.lastActivity = Date.now();
    if (progress !== undefined) s.progress = Number(progress);
    return { status: 201, headers: { 'x-amz-Checksum': digest.toString('base64'), 'x-amz-Checksum-Algorithm': 'SHA256' } };
  }

  private complete(region: string, id: string, req: IncomingMessage): Answer {
    const s = this.state.snapshots.get(id);
    if (!s || s.region !== region) throw snapshotNotFound(id);
    const count = header(req, 'x-amz-changedblockscount');
    if (count === undefined || !/^\d+$/.test(count)) throw validation('INVALID_PARAMETER_VALUE', 'x-amz-ChangedBlocksCount must be a number of blocks');
    const checksum = header(req, 'x-amz-checksum');
    const algorithm = header(req, 'x-amz-checksum-algorithm');
    const method = header(req, 'x-amz-checksum-aggregation-method');
    if (checksum !== undefined && (algorithm !== 'SHA256' || method !== 'LINEAR')) throw validation('INVALID_PARAMETER_VALUE', 'An aggregate checksum needs x-amz-Checksum-Algorithm SHA256 and x-amz-Checksum-Aggregation-Method LINEAR');
    // a repeated CompleteSnapshot (a retry after a lost answer) reports where the snapshot is
    if (s.state !== 'pending' || s.sealing) return json(202, { Status: s.state });
    s.sealing = true;
    s.lastActivity = Date.now();
    const timer = setTimeout(() => {
      this.pendingSeals.delete(timer);
      void this.seal(s, Number(count), checksum);
    }, this.sealDelayMs);
    this.pendingSeals.add(timer);
    return json(202, { Status: 'pending' });
  }

  /** What AWS does after CompleteSnapshot: the snapshot completes, or goes to error when the count or checksum disagree. */
  private async seal(s: SnapshotRecord, count: number, checksum: string | undefined): Promise<void> {
    if (s.state !== 'pending') return;
    let problem: string | undefined;
    if (count !== s.written.size) problem = `ChangedBlocksCount ${count} does not match the ${s.written.size} blocks written to the snapshot`;
    else if (checksum !== undefined) {
      const linear = createHash('sha256');
      for (const i of [...s.written].sort((a, b) => a - b)) linear.update(Buffer.from(s.blocks.get(i)!.sha256, 'hex'));
      if (linear.digest('base64') !== checksum) problem = 'The aggregate checksum does not match the checksums of the blocks written';
    }
    if (problem) {
      s.state = 'error';
      s.stateMessage = problem;
    } else {
      s.state = 'completed';
      s.progress = 100;
      s.completionTime = new Date();
    }
  }

  private cancelTimedOut(): void {
    const now = Date.now();
    for (const s of this.state.snapshots.values()) {
      if (s.origin !== 'ebs-direct' || s.state !== 'pending' || s.sealing) continue;
      if (now - s.lastActivity > s.timeoutMinutes * this.minuteMs) {
        s.state = 'error';
        s.stateMessage = `The snapshot was not completed within its timeout of ${s.timeoutMinutes} minutes`;
      }
    }
  }

  private completedSnapshot(region: string, id: string): SnapshotRecord {
    if (!/^snap-[0-9a-f]+$/.test(id)) throw validation('INVALID_SNAPSHOT_ID', `The snapshot ID '${id}' is not valid`);
    const s = this.state.snapshots.get(id);
    if (!s || s.region !== region) throw snapshotNotFound(id);
    if (s.state !== 'completed') throw validation('INVALID_SNAPSHOT_ID', `The snapshot '${id}' is ${s.state}: only completed snapshots can be read`);
    return s;
  }

  private listBlocks(region: string, id: string, url: URL): Answer {
    const s = this.completedSnapshot(region, id);
    const indexes = [...s.blocks.keys()].sort((a, b) => a - b);
    const page = paginate(indexes, url, id);
    return json(200, {
      Blocks: page.items.map((i) => ({ BlockIndex: i, BlockToken: blockToken(i, s.blocks.get(i)!.sha256) })),
      ExpiryTime: expiry(),
      VolumeSize: s.volumeSize,
      BlockSize: EBS_BLOCK_SIZE,
      ...(page.next === undefined ? {} : { NextToken: page.next }),
    });
  }

  private listChanged(region: string, secondId: string, url: URL): Answer {
    const second = this.completedSnapshot(region, secondId);
    const firstId = url.searchParams.get('firstSnapshotId');
    const first = firstId === null ? undefined : this.completedSnapshot(region, firstId);
    if (first && first.lineage !== second.lineage) throw validation('UNRELATED_SNAPSHOTS', `The snapshots '${first.id}' and '${second.id}' are not of the same lineage`);
    const all = new Set([...(first?.blocks.keys() ?? []), ...second.blocks.keys()]);
    // a block changed when a different snapshot of the lineage wrote it (even with the same data)
    const changed = [...all].filter((i) => first?.blocks.get(i)?.writer !== second.blocks.get(i)?.writer).sort((a, b) => a - b);
    const page = paginate(changed, url, `${firstId ?? ''}:${secondId}`);
    return json(200, {
      ChangedBlocks: page.items.map((i) => {
        const a = first?.blocks.get(i);
        const b = second.blocks.get(i);
        return { BlockIndex: i, ...(a ? { FirstBlockToken: blockToken(i, a.sha256) } : {}), ...(b ? { SecondBlockToken: blockToken(i, b.sha256) } : {}) };
      }),
      ExpiryTime: expiry(),
      VolumeSize: second.volumeSize,
      BlockSize: EBS_BLOCK_SIZE,
      ...(page.next === undefined ? {} : { NextToken: page.next }),
    });
  }

  private async getBlock(region: string, id: string, rawIndex: string, url: URL): Promise<Answer> {
    const s = this.completedSnapshot(region, id);
    const index = blockIndex(rawIndex, s);
    const token = url.searchParams.get('blockToken');
    if (!token) throw validation('INVALID_BLOCK_TOKEN', 'blockToken is required');
    const ref = s.blocks.get(index);
    if (!ref || token !== blockToken(index, ref.sha256)) throw validation('INVALID_BLOCK_TOKEN', `The block token is not valid for block ${index} of '${id}'`);
    const data = await this.state.blocks.read(ref.sha256);
    return {
      status: 200,
      headers: {
        'content-type': 'application/octet-stream',
        'x-amz-Data-Length': String(data.length),
        'x-amz-Checksum': createHash('sha256').update(data).digest('base64'),
        'x-amz-Checksum-Algorithm': 'SHA256',
      },
      body: data,
    };
  }
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

function json(status: number, doc: unknown): Answer {
  return { status, headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc) };
}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  try {
    const doc = JSON.parse(body.toString('utf8')) as unknown;
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) return doc as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new EbsError('SerializationException', 400, 'The request body is not a JSON object');
}

function parseTags(tags: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (tags === undefined) return out;
  if (!Array.isArray(tags)) throw validation('INVALID_TAG', 'Tags must be a list');
  if (tags.length > 50) throw validation('INVALID_TAG', 'A snapshot can have at most 50 tags');
  for (const t of tags as { Key?: unknown; Value?: unknown }[]) {
    if (typeof t?.Key !== 'string' || t.Key.length === 0 || t.Key.length > 127) throw validation('INVALID_TAG', `Tag key '${String(t?.Key)}' is not valid`);
    if (t.Key.startsWith('aws:')) throw validation('INVALID_TAG', `Tag keys starting with 'aws:' are reserved for internal use`);
    if (t.Value !== undefined && (typeof t.Value !== 'string' || t.Value.length > 255)) throw validation('INVALID_TAG', `Tag value of '${t.Key}' is not valid`);
    out.set(t.Key, (t.Value as string | undefined) ?? '');
  }
  return out;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function blockIndex(raw: string, s: SnapshotRecord): number {
  if (!/^\d+$/.test(raw)) throw validation('INVALID_BLOCK', `Block index '${raw}' is not valid`);
  const i = Number(raw);
  if (i >= s.volumeSize * BLOCKS_PER_GIB) throw validation('INVALID_BLOCK', `Block index ${i} is out of range: the volume of ${s.volumeSize} GiB has blocks 0 to ${s.volumeSize * BLOCKS_PER_GIB - 1}`);
  return i;
}

/** Block tokens name the content of one block at one index (valid for any snapshot holding it there). */
function blockToken(index: number, sha256: string): string {
  return Buffer.from(`${index}:${sha256}`).toString('base64');
}

function expiry(): number {
  return Math.floor(Date.now() / 1000) + 3600;
}

/** maxResults (100 to 10000; below 100 still returns 100, as the EBS FAQ says), pageToken and startingBlockIndex. */
function paginate(indexes: number[], url: URL, scope: string): { items: number[]; next?: string } {
  const max = url.searchParams.get('maxResults');
  const start = url.searchParams.get('startingBlockIndex');
  const token = url.searchParams.get('pageToken');
  let size = 10_000;
  if (max !== null) {
    if (!/^\d+$/.test(max) || Number(max) > 10_000) throw validation('INVALID_PARAMETER_VALUE', 'maxResults must be between 100 and 10000');
    size = Math.max(100, Number(max));
  }
  let from = 0;
  if (start !== null) {
    if (!/^\d+$/.test(start)) throw validation('INVALID_PARAMETER_VALUE', 'startingBlockIndex must be a block index');
    from = Number(start);
  }
  if (token !== null) {
    const decoded = /^([^|]*)\|(\d+)$/.exec(Buffer.from(token, 'base64').toString('utf8'));
    if (!decoded || decoded[1] !== scope) throw validation('INVALID_PAGE_TOKEN', 'The page token is not valid');
    from = Math.max(from, Number(decoded[2]));
  }
  const rest = indexes.filter((i) => i >= from);
  const items = rest.slice(0, size);
  const after = rest[size];
  return { items, ...(after === undefined ? {} : { next: Buffer.from(`${scope}|${after}`).toString('base64') }) };
}

function faultError(effect: FaultEffect): EbsError {
  if (effect.kind === 'deny') return new EbsError('AccessDeniedException', 403, 'User: arn:aws:iam::123456789012:user/aim is not authorized to perform this action because no identity-based policy allows it', 'UNAUTHORIZED_ACCOUNT');
  if (effect.kind === 'throttle') return new EbsError('RequestThrottledException', 400, 'The request was throttled: the number of API requests exceeds the limit', 'ACCOUNT_THROTTLED');
  const status = effect.kind === 'server-error' ? (effect.status ?? 500) : 500;
  return new EbsError('InternalServerException', status, 'An internal error has occurred');
}

/** StartSnapshot's answer (and a repeated one with the same client token). */
export function describeSnapshot(s: SnapshotRecord, ownerId: string): Record<string, unknown> {
  return {
    SnapshotId: s.id,
    OwnerId: ownerId,
    Status: s.state,
    StartTime: s.startTime.getTime() / 1000,
    VolumeSize: s.volumeSize,
    BlockSize: EBS_BLOCK_SIZE,
    ...(s.description === undefined ? {} : { Description: s.description }),
    ...(s.tags.size ? { Tags: [...s.tags].map(([Key, Value]) => ({ Key, Value })) } : {}),
    ...(s.parentId ? { ParentSnapshotId: s.parentId } : {}),
    ...(s.kmsKeyArn ? { KmsKeyArn: s.kmsKeyArn } : {}),
    SseType: s.encrypted ? 'sse-ebs' : 'none',
  };
}
