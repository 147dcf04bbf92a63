/**
 * aim boot --probe waits for the guest with the shared readiness rules: tried until the answer
 * meets its expectation, QEMU exits, or the timeout runs out. A local HTTP server stands in for
 * the guest's forwarded port; the VM is a stub with a console.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitForHttp, type RunningVm } from '../../src/run/qemu.js';
import { ProbeFailedError } from '../../src/core/probe/readiness.js';
import type { AimError } from '../../src/lib/errors.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/** A guest whose answers follow `script` (status, body), the last one repeated. */
async function guest(script: [number, string][]): Promise<{ port: number; hits: () => number }> {
  let n = 0;
  server = createServer((_, res) => {
    const [status, body] = script[Math.min(n++, script.length - 1)]!;
    res.writeHead(status).end(body);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, hits: () => n };
}

function vm(exited = false): RunningVm {
  return {
    pid: 1,
    process: Promise.resolve({ exitCode: 1 }) as unknown as RunningVm['process'],
    stderr: () => 'qemu: could not load kernel',
    exited: () => exited,
    stop: async () => {},
    console: async () => 'Booting Linux...\nnginx: [emerg] bind() failed',
    powerDown: async () => ({ exitCode: 0, seconds: 0 }),
    waitForConsole: async () => ({ seconds: 0 }),
  };
}

describe('waitForHttp (aim boot --probe)', () => {
  it('tries again until the guest answers 2xx, and says after how many tries', async () => {
    const g = await guest([[503, 'starting'], [503, 'starting'], [200, '<title>up</title>']]);
    const answer = await waitForHttp(vm(), g.port, '/', 60_000);
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe('<title>up</title>');
    expect(answer.tries).toBe(3);
    expect(g.hits()).toBe(3);
  });

  it('takes an expectation: another status, text in the body', async () => {
    const g = await guest([[200, 'maintenance'], [404, 'no such page here']]);
    const answer = await waitForHttp(vm(), g.port, '/gone', 60_000, Date.now(), { status: 404, bodyContains: 'no such page' });
    expect(answer).toMatchObject({ status: 404, tries: 2 });
  });

  it('fails at the timeout with the last answer and the guest console', async () => {
    const g = await guest([[404, 'not found']]);
    const e = (await waitForHttp(vm(), g.port, '/', 1_000).catch((x: unknown) => x)) as ProbeFailedError;
    expect(e).toBeInstanceOf(ProbeFailedError);
    expect(e.failure).toMatchObject({ unmet: 'HTTP 404, expected 2xx', last: { status: 404, bodyTail: 'not found' } });
    expect(e.failure.tries).toBeGreaterThan(1);
    expect(e.message).toContain('--- last output of the guest console ---\nBooting Linux...\nnginx: [emerg] bind() failed');
    expect(e.hint).toMatch(/--timeout/);
  });

  it('stops at once when QEMU has exited', async () => {
    const g = await guest([[200, 'never asked']]);
    const e = (await waitForHttp(vm(true), g.port, '/', 60_000).catch((x: unknown) => x)) as AimError;
    expect(e.code).toBe('E_BOOT_NO_ANSWER');
    expect(e.message).toMatch(/QEMU exited \(1\) before the guest answered: qemu: could not load kernel/);
    expect(g.hits()).toBe(0);
  });
});
