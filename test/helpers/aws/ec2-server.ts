import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AwsState } from './aws-state.js';
import { Ec2Error } from './ec2-error.js';
import { applyBefore, Faults, type FaultEffect } from './faults.js';
import { listen, readBody, type Listener } from './http-listener.js';
import { decodeQueryInput, encodeQueryError, encodeQueryOutput } from './query-protocol.js';
import { isSigV4Problem, parseSigV4 } from './sigv4.js';
import { Traffic } from './traffic.js';

/** One EC2 call as a handler sees it: the decoded input (SDK member names) and the signer's region. */
export interface Ec2Call {
  action: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each handler reads its own action's input shape
  input: any;
  region: string;
  requestId: string;
}

export type Ec2Handler = (call: Ec2Call) => Promise<Record<string, unknown> | void> | Record<string, unknown> | void;

/**
 * The EC2 Query API on 127.0.0.1: form-encoded POSTs (or GETs) signed with SigV4, answered with
 * the XML documents of the EC2 API reference and its error codes. Actions come from handler
 * tables (images, snapshots, tags, import, instances…); requests and bytes are counted per action
 * and faults can be injected per action.
 */
export class Ec2Server {
  readonly faults = new Faults();
  readonly traffic = new Traffic();
  /** Every call, in order: action, the signer's region, and the error code when it failed ('dropped': no answer). */
  readonly calls: { action: string; region?: string; error?: string }[] = [];
  private listener?: Listener;

  constructor(
    private readonly state: AwsState,
    private readonly handlers: Record<string, Ec2Handler>,
  ) {}

  get url(): string {
    if (!this.listener) throw new Error('the EC2 server is not started');
    return this.listener.url;
  }

  async start(): Promise<string> {
    this.listener = await listen((req, res) => void this.handle(req, res));
    this.traffic.watch(this.listener.server);
    return this.listener.url;
  }

  async stop(): Promise<void> {
    await this.listener?.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    let action = 'Unknown';
    let bodyBytes = 0;
    const call: { action: string; region?: string; error?: string } = { action };
    let answered = false;
    const send = (status: number, xml: string) => {
      answered = true;
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-RequestId': requestId });
      res.end(xml);
    };
    try {
      const { body, tooLarge, size } = await readBody(req, 1 << 20);
      bodyBytes = size;
      if (tooLarge) throw new Ec2Error('RequestEntityTooLarge', 'The request is too large', 413);
      const url = new URL(req.url ?? '/', 'http://ec2');
      const params = new Map<string, string>(url.searchParams);
      if (req.method === 'POST') for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.set(k, v);
      else if (req.method !== 'GET') throw new Ec2Error('InvalidHttpRequest', `The HTTP method ${req.method} is not supported`);
      action = params.get('Action') ?? 'Unknown';
      call.action = action;
      const effects = this.faults.take(action);
      if (await applyBefore(effects, req.socket, faultError)) return;
      const scope = parseSigV4(req.headers, 'ec2');
      if (isSigV4Problem(scope)) {
        if (scope.code === 'MissingAuthenticationToken') throw new Ec2Error('MissingParameter', 'The request must contain the parameter AWSAccessKeyId');
        throw new Ec2Error(scope.code, scope.message, scope.code === 'IncompleteSignature' ? 400 : 403);
      }
      call.region = scope.region;
      if (!this.state.regionEnabled(scope.region)) throw new Ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials', 401);
      if (!params.has('Action')) throw new Ec2Error('MissingAction', 'The request must contain the parameter Action');
      if (!params.get('Version')) throw new Ec2Error('MissingParameter', 'The request must contain the parameter Version');
      const handler = this.handlers[action];
      const input = decodeQueryInput(action, params);
      if (!handler) throw new Ec2Error('InvalidAction', `The action ${action} is not valid for this web service.`);
      if (input.DryRun === true) throw new Ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
      const result = (await handler({ action, input, region: scope.region, requestId })) ?? {};
      if (effects.some((e) => e.kind === 'drop')) {
        req.socket.destroy();
        return;
      }
      send(200, encodeQueryOutput(action, result, requestId));
    } catch (e) {
      const err = e instanceof Ec2Error ? e : new Ec2Error('InternalError', `An internal error has occurred (fake EC2: ${(e as Error).message})`, 500);
      call.error = err.code;
      send(err.status, encodeQueryError(err.code, err.message, requestId));
    } finally {
      if (!answered && !call.error) call.error = 'dropped';
      this.calls.push(call);
      this.traffic.count(action, bodyBytes, !answered || call.error !== undefined);
    }
  }
}

function faultError(effect: FaultEffect): Ec2Error {
  if (effect.kind === 'deny') return new Ec2Error('UnauthorizedOperation', 'You are not authorized to perform this operation. User: arn:aws:iam::123456789012:user/aim is not authorized to perform this action because no identity-based policy allows it', 403);
  if (effect.kind === 'throttle') {
    return effect.code === 'Throttling' ? new Ec2Error('Throttling', 'Rate exceeded', 400) : new Ec2Error('RequestLimitExceeded', 'Request limit exceeded.', 503);
  }
  if (effect.kind === 'server-error' && effect.status === 503) return new Ec2Error('Unavailable', "The server is overloaded and can't handle the request.", 503);
  return new Ec2Error('InternalError', 'An internal error has occurred', 500);
}
