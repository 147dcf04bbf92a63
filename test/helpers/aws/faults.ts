/**
 * Faults a test injects into the fake EC2 and EBS servers, as the services really fail:
 * throttling (EC2 RequestLimitExceeded with 503 or Throttling with 400; EBS
 * RequestThrottledException, 400), server errors (EC2 InternalError 500 / Unavailable 503; EBS
 * InternalServerException 500), a connection dropped without an answer (before the action took
 * effect, or after: the effect happened and the answer was lost), delays, and a caller without
 * the IAM permission for the action (EC2 UnauthorizedOperation, EBS AccessDeniedException; 403).
 */
export type FaultEffect =
  | { kind: 'throttle'; code?: 'RequestLimitExceeded' | 'Throttling' }
  | { kind: 'server-error'; status?: 500 | 503 }
  | { kind: 'drop'; when?: 'before' | 'after' }
  | { kind: 'delay'; ms: number }
  | { kind: 'deny' };

export interface FaultRule {
  /** The action name (RegisterImage, PutSnapshotBlock…), or '*' for every action. */
  action: string;
  /** EBS block actions: only requests for this block index. */
  blockIndex?: number;
  /** How many matching requests it hits (default 1; Infinity for all). */
  times?: number;
  effect: FaultEffect;
}

export interface ArmedFault extends FaultRule {
  /** Requests it has hit so far. */
  hits: number;
}

/** The fault rules of one server; each matching request takes one hit from every rule it matches. */
export class Faults {
  readonly rules: ArmedFault[] = [];

  add(rule: FaultRule): ArmedFault {
    const armed = { ...rule, hits: 0 };
    this.rules.push(armed);
    return armed;
  }

  clear(): void {
    this.rules.length = 0;
  }

  /** The effects that apply to a request, counting their hits. */
  take(action: string, blockIndex?: number): FaultEffect[] {
    const out: FaultEffect[] = [];
    for (const r of this.rules) {
      if (r.action !== '*' && r.action !== action) continue;
      if (r.blockIndex !== undefined && r.blockIndex !== blockIndex) continue;
      if (r.hits >= (r.times ?? 1)) continue;
      r.hits++;
      out.push(r.effect);
    }
    return out;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * What a request's faults do before the action runs: delays are waited out; a drop before the
 * action closes the connection (true: the request got no answer); throttling, a server error or a
 * denial is thrown as the service's own error (`toError`). A drop after the action is the caller's
 * to apply once the action took effect.
 */
export async function applyBefore<E extends Error>(effects: FaultEffect[], socket: { destroy(): void }, toError: (effect: FaultEffect) => E): Promise<boolean> {
  for (const e of effects) if (e.kind === 'delay') await sleep(e.ms);
  if (effects.some((e) => e.kind === 'drop' && e.when !== 'after')) {
    socket.destroy();
    return true;
  }
  const injected = effects.find((e) => e.kind === 'throttle' || e.kind === 'server-error' || e.kind === 'deny');
  if (injected) throw toError(injected);
  return false;
}
