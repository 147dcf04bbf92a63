import { InterruptedError } from '../../src/lib/errors.js';
import { debugLog } from '../../src/lib/log.js';

const debug = debugLog('aws:retry');

const THROTTLING = new Set([
  'RequestLimitExceeded',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'SlowDown',
  'EC2ThrottledException',
  'BandwidthLimitExceeded',
]);
const TRANSIENT_NETWORK = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET', 'TimeoutError', 'RequestTimeout', 'RequestTimeoutException']);

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/** The AWS error code of an SDK error ("InvalidAMIName.Duplicate"), or a Node error code. */
export function errorCode(e: unknown): string | undefined {
  const s = e as SdkErrorShape | undefined;
  return (s?.$metadata ? s.name : undefined) ?? s?.code ?? s?.name;
}

export const httpStatus = (e: unknown) => (e as SdkErrorShape | undefined)?.$metadata?.httpStatusCode;

export function isThrottling(e: unknown): boolean {
  return THROTTLING.has(errorCode(e) ?? '') || httpStatus(e) === 429;
}

/** Worth another try: throttling, a 5xx, or the connection failing without an answer. */
export function isRetryable(e: unknown): boolean {
  if (isThrottling(e)) return true;
  const status = httpStatus(e);
  if (status !== undefined && status >= 500) return true;
  const s = e as SdkErrorShape | undefined;
  if (status === undefined && s?.$fault === 'server') return true;
  const code = errorCode(e) ?? '';
  return TRANSIENT_NETWORK.has(code) || (status === undefined && /socket hang up|ECONNRESET|other side closed|premature close/i.test(s?.message ?? ''));
}

/** Sleeps, or rejects as soon as the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export const abortReason = (signal: AbortSignal): Error => (signal.reason instanceof Error ? signal.reason : new InterruptedError());

export interface RetryOptions {
  /** Tries in all (default 8). */
  attempts?: number;
  /** First delay, doubled each try with full jitter, capped at maxMs (defaults 200 and 20000). */
  baseMs?: number;
  maxMs?: number;
  signal?: AbortSignal;
  /** Called before each wait (for counting and reporting). */
  onRetry?: (e: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Runs `fn` again after throttling, 5xx answers and dropped connections, backing off
 * exponentially with full jitter (as the AWS SDKs do), up to `attempts` tries. Other errors, and
 * the last one, are thrown as they are. Only for calls that are safe to repeat.
 */
export async function withRetry<T>(what: string, fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 8;
  const base = options.baseMs ?? 200;
  const max = options.maxMs ?? 20_000;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (e) {
      if (options.signal?.aborted) throw abortReason(options.signal);
      if (attempt >= attempts || !isRetryable(e)) throw e;
      const delay = Math.round(Math.random() * Math.min(max, base * 2 ** (attempt - 1)));
      debug('%s: %s (attempt %d of %d), again in %d ms', what, errorCode(e) ?? String(e), attempt, attempts, delay);
      options.onRetry?.(e, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}

/** Polls `check` with a growing interval until it returns a value, or the deadline passes (undefined then). */
export async function pollUntil<T>(check: () => Promise<T | undefined>, options: { timeoutMs: number; firstMs?: number; maxMs?: number; signal?: AbortSignal }): Promise<T | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  let wait = options.firstMs ?? 250;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() + wait > deadline) return undefined;
    await sleep(wait, options.signal);
    wait = Math.min(options.maxMs ?? 15_000, Math.round(wait * 1.6));
  }
}
