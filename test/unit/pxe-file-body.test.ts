import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILE_CHUNK, writeFileRange } from '../../src/server/pxe/file-body.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let file: string;
let content: Buffer;
let server: Server;
let port: number;
const outcomes: { length: number; sent: number; error?: string }[] = [];

/** GET /START/LENGTH → those bytes of the file, through writeFileRange. */
beforeAll(async () => {
  tmp = await tempDir('aim-file-body-');
  file = join(tmp.dir, 'initrd');
  // not a whole number of chunks, every chunk different, and more than the kernel buffers of a
  // connection hold, so a client that goes away leaves the server with a body half written
  content = randomBytes(FILE_CHUNK * 96 + 12_345);
  await writeFile(file, content);
  server = createServer((req, res) => {
    const [, start, length] = (req.url ?? '').split('/').map(Number) as [number, number, number];
    res.writeHead(200, { 'Content-Length': length });
    const outcome: { length: number; sent: number; error?: string } = { length, sent: 0 };
    outcomes.push(outcome);
    writeFileRange(res, file, start, length, (n) => (outcome.sent += n)).catch((e: unknown) => {
      outcome.error = (e as Error).message;
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server?.close();
  await tmp?.cleanup();
});

/** Fetches a range; with `stopAfter`, the client goes away once it has that many bytes (and errors are expected). */
function get(start: number, length: number, stopAfter?: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `/${start}/${length}`, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let got = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (stopAfter !== undefined && got >= stopAfter) {
          req.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
      // a body cut short ends in an error (aborted), then close: what came is the answer
      res.on('error', () => undefined);
      res.on('close', () => resolve(Buffer.concat(chunks)));
    });
    req.on('error', (e) => (stopAfter === undefined ? reject(e) : undefined));
    req.end();
  });
}

describe('file bodies from reused buffers', () => {
  it('sends exactly the asked bytes to many clients at once, while others go away mid-body', async () => {
    const MiB = 1 << 20;
    const ranges: [number, number][] = [[0, content.length], [1, 3 * FILE_CHUNK], [FILE_CHUNK - 1, FILE_CHUNK + 2], [content.length - 10, 10], [0, 0]];
    for (let i = 0; i < 20; i++) {
      const start = Math.floor(Math.random() * (content.length - 2 * MiB));
      ranges.push([start, Math.floor(Math.random() * 2 * MiB)]);
    }
    // the quitters leave buffers the socket may still hold while the others write theirs
    const quitters = Array.from({ length: 6 }, () => get(0, content.length, FILE_CHUNK));
    const bodies = await Promise.all(ranges.map(([s, l]) => get(s, l)));
    await Promise.all(quitters);
    const slice = ([s, l]: [number, number]) => content.subarray(s, s + l);
    bodies.forEach((b, i) => expect(b.equals(slice(ranges[i]!)), `range ${ranges[i]!.join('+')}`).toBe(true));
    // and once more, from the buffers the first round gave back
    const again = await Promise.all(ranges.slice(0, 5).map(([s, l]) => get(s, l)));
    again.forEach((b, i) => expect(b.equals(slice(ranges[i]!))).toBe(true));
    // a finished response counted what the socket took; a quitter's ended in an error, short
    await new Promise((r) => setTimeout(r, 500));
    for (const o of outcomes.filter((x) => x.error === undefined)) expect(o.sent).toBe(o.length);
    const cut = outcomes.filter((o) => o.error !== undefined);
    expect(cut.length).toBeGreaterThan(0);
    for (const o of cut) expect(o.sent).toBeLessThan(o.length);
  });

  it('fails a range past the end of the file instead of sending less', async () => {
    const before = outcomes.length;
    const body = await get(content.length - 100, 200, Number.POSITIVE_INFINITY);
    await new Promise((r) => setTimeout(r, 200));
    expect(body.equals(content.subarray(content.length - 100))).toBe(true);
    expect(outcomes[before]?.error).toMatch(/ended early/);
  });
});
