import { execa } from 'execa';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRepository } from '../../src/core/repository/repository.js';
import { runJs } from '../helpers/cli.js';
import { FakeDatastore } from '../helpers/datastore.js';
import { writeFakeKernelTree } from '../helpers/fake-kernel.js';
import { tempDir } from '../helpers/tmp.js';

// Marker credentials no real output contains; '/', '+' and '=' make every encoding differ.
const USER = 'aim-marker-user-5q7';
const PASSWORD = 'aim-Marker/P4ss+word=5q7';
const AWS_SECRET = 'aimMarkerAwsSecret/5q7+AbCdEfGhIjKlMnOpQr';

/** Every way a marker could leak: as is, URL-encoded, base64 (and url-safe, unpadded), and as basic auth sends user:password. */
function leakForms(): string[] {
  const encodings = (s: string) => {
    const b64 = Buffer.from(s).toString('base64');
    return [s, encodeURIComponent(s), b64, b64.replace(/=+$/, ''), Buffer.from(s).toString('base64url'), encodeURIComponent(b64)];
  };
  // distinctive middles too: a secret cut short is still a leak
  return [...encodings(PASSWORD), ...encodings(`${USER}:${PASSWORD}`), ...encodings(AWS_SECRET), 'P4ss', 'AwsSecret/5q7'];
}

function expectNoLeak(output: string): void {
  for (const form of leakForms()) {
    const at = output.indexOf(form);
    expect(at, `leaked ${form} in: ${output.slice(Math.max(0, at - 300), at + 100)}`).toBe(-1);
  }
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let ds: FakeDatastore;
let url: string;
const env = { AIM_VMWARE_USER: USER, AIM_VMWARE_PASSWORD: PASSWORD, AWS_SECRET_ACCESS_KEY: AWS_SECRET, DEBUG: '*' };
const cli = async (args: string[]) => {
  const r = await execa(process.execPath, [runJs, ...args, '--repo', repo], { env, reject: false, timeout: 600_000 });
  return { exitCode: r.exitCode ?? -1, output: `${r.stdout}\n${r.stderr}`, stdout: r.stdout, stderr: r.stderr };
};

beforeAll(async () => {
  tmp = await tempDir('aim-secrets-');
  repo = join(tmp.dir, 'repo');
  await mkdir(join(tmp.dir, 'app'));
  await writeFile(join(tmp.dir, 'app', 'app'), '#!/bin/sh\n', { mode: 0o755 });
  expect((await cli(['repo', 'init'])).exitCode).toBe(0);
  expect((await cli(['image', 'import', join(tmp.dir, 'app'), '--tag', 'slim/app:1'])).exitCode).toBe(0);
  expect((await cli(['image', 'import', await writeFakeKernelTree(join(tmp.dir, 'kernel'), '6.1.0-1-amd64'), '--tag', 'core/kernel:test'])).exitCode).toBe(0);
  const r = await openRepository(repo);
  await r.catalog.putSlimReport((await r.catalog.resolve('slim/app:1'))!, { entrypoint: ['/app'] });
  await r.close();
  // A datastore whose errors echo what it was sent: the Authorization header, the credentials
  // base64-encoded alone, the password URL-encoded and in JSON.
  ds = new FakeDatastore();
  ds.behave = (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(404, { 'Content-Length': 0 }).end();
      return true;
    }
    req.resume();
    const auth = req.headers.authorization ?? '';
    res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`internal error; request had Authorization: ${auth} token=${auth.slice(6)} user ${encodeURIComponent(PASSWORD)} {"pw":"${PASSWORD}"}`);
    return true;
  };
  url = `${await ds.start()}/folder/aim?dcPath=ha-datacenter&dsName=datastore1`;
}, 300_000);
afterAll(async () => {
  await ds.stop();
  await tmp.cleanup();
});

describe('no credential reaches stdout or stderr (also with DEBUG=*)', () => {
  it('a datastore 500 whose body echoes the Authorization header: --json and text', async () => {
    const json = await cli(['ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'o1'), '--datastore-url', url, '--json']);
    expect(json.exitCode, json.stderr.slice(-2000)).toBe(10);
    const error = (JSON.parse(json.stdout) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('E_DATASTORE_HTTP');
    // the body is in the message, its credentials replaced
    expect(error.message).toMatch(/HTTP 500 \(internal error; request had Authorization: Basic \*\*\* token=\*\*\*/);
    // the server really got them (the test would prove nothing otherwise)
    expect(ds.seen.some((s) => s.auth === `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`)).toBe(true);
    expectNoLeak(json.output);

    const text = await cli(['ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'o2'), '--datastore-url', url]);
    expect(text.exitCode).toBe(10);
    expect(text.stderr).toMatch(/^aim: PUT \/folder\/aim\/slim-app-1\.vmdk failed: HTTP 500/m);
    expect(text.stderr).toMatch(/oclif:main process\.argv/); // DEBUG lines were printed (and redacted)
    expectNoLeak(text.output);
  });

  it('credentials in a --datastore-url, valid or not, and a secret of the environment in an option', async () => {
    const port = new URL(url).port;
    for (const bad of [
      `https://${USER}:${PASSWORD}@127.0.0.1:${port}/folder/aim?dcPath=ha-datacenter&dsName=datastore1`,
      `https://${USER}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/folder/aim?dcPath=ha-datacenter&dsName=datastore1`,
      `https://${USER}:${PASSWORD} @127.0.0.1:99999999/folder/aim`,
    ]) {
      for (const mode of [['--json'], []]) {
        const r = await cli(['ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'o3'), '--datastore-url', bad, ...mode]);
        expect(r.exitCode, r.output.slice(-2000)).toBe(2);
        expect(r.output).toMatch(/datastore-url/);
        // oclif's first DEBUG line prints argv, URL included: its user information is hidden
        expect(r.stderr).toMatch(/oclif:main process\.argv: \[[^\]]*'https:\/\/(\*\*\*@127\.0\.0\.1|aim-marker-user-5q7:\*\*\* @127)/);
        expectNoLeak(r.output);
      }
    }
    // AWS_SECRET_ACCESS_KEY is a secret wherever it shows up, here echoed by a validation error
    const named = await cli(['ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'o4'), '--name', AWS_SECRET, '--json']);
    expect(named.exitCode).toBe(2);
    expect(JSON.parse(named.stdout)).toMatchObject({ error: { message: 'provider vmware: name: "***" must be letters, digits, ".", "_" and "-"' } });
    expectNoLeak(named.output);
  });
});
