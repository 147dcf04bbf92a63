import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ToolFailedError, cancellationError, throwIfCancelled } from '../../lib/errors.js';
import { runTool, spawnTool } from '../../lib/exec.js';

let version: Promise<string> | undefined;

/** The zstd CLI's version ("v1.5.4"): the compressed bytes depend on it. */
export function zstdVersion(): Promise<string> {
  version ??= runTool('zstd', ['-V']).then((r) => /v\d+\.\d+\.\d+/.exec(r.stdout)?.[0] ?? r.stdout.trim());
  return version;
}

/**
 * `source` (exactly `length` bytes) compressed by the zstd CLI as one frame, streamed: `zstd -<level>
 * -T1 --stream-size=<length>` gives the same bytes as compressing a file of that content (the size
 * goes into the frame header and picks the same parameters), on any machine (one thread). zstd
 * fails when the source does not have `length` bytes. Aborting the signal, or the reader stopping,
 * kills zstd.
 */
export async function* zstdFrame(source: AsyncIterable<Buffer>, length: number, level: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
  throwIfCancelled(signal);
  // Our own controller: zstd must also die when the reader stops early (an HTTP client gone).
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const { child: zstd } = await spawnTool('zstd', ['-q', `-${level}`, '-T1', '--no-progress', `--stream-size=${length}`, '-c'], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', cancelSignal: stop.signal }).catch((e: unknown) => {
    signal?.removeEventListener('abort', onAbort);
    throw signal?.aborted ? cancellationError(signal) : e;
  });
  const stderr: Buffer[] = [];
  zstd.stderr?.on('data', (d: Buffer) => stderr.push(d));
  // The feeder's error (a blob that fails verification, a cancellation) is the one to report, not zstd's EPIPE.
  let fed: unknown;
  const feeding = pipeline(Readable.from(source, { objectMode: false }), zstd.stdin!).catch((e: unknown) => {
    fed ??= e;
    zstd.stdin?.destroy();
  });
  let finished = false;
  try {
    for await (const chunk of zstd.stdout!) yield chunk as Buffer;
    await feeding;
    const result = await zstd;
    if (fed !== undefined) throw fed;
    if (result.isCanceled) throw cancellationError(signal ?? stop.signal);
    if (result.exitCode !== 0) throw new ToolFailedError(['zstd', `-${level}`, `--stream-size=${length}`], result.exitCode, Buffer.concat(stderr).toString('utf8'));
    finished = true;
  } catch (e) {
    throw signal?.aborted ? cancellationError(signal) : e;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) {
      stop.abort();
      await Promise.allSettled([zstd, feeding]);
    }
  }
}
