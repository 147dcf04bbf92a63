import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface ErrorJson {
  error: { code: string; message: string; exitCode: number; hint?: string };
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let server: http.Server;
let requests: string[];
let datastore: string;
const env = { AIM_VMWARE_USER: 'root', AIM_VMWARE_PASSWORD: 's3cret' };
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo], { env });

beforeAll(async () => {
  tmp = await tempDir('aim-ship-cli-');
  repo = join(tmp.dir, 'repo');
  await mkdir(join(tmp.dir, 'tree', 'etc'), { recursive: true });
  await writeFile(join(tmp.dir, 'tree', 'etc', 'hostname'), 'vm\n');
  expect((await run('repo', 'init')).exitCode).toBe(0);
  expect((await run('image', 'import', join(tmp.dir, 'tree'), '--tag', 'slim/app:1')).exitCode).toBe(0);
  // a datastore that must never be contacted by a dry run or a ship refused before work
  requests = [];
  server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(404, { 'Content-Length': 0 }).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  datastore = `http://127.0.0.1:${(server.address() as AddressInfo).port}/folder/aim?dcPath=ha-datacenter&dsName=datastore1`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await tmp.cleanup();
});

describe('aim ship', () => {
  it('has help with examples and --json for ship, its subcommands and provider list', async () => {
    for (const cmd of [['ship'], ['ship', 'list'], ['ship', 'resume'], ['ship', 'rm'], ['provider', 'list']]) {
      const h = await execa(process.execPath, [runJs, ...cmd, '--help']);
      expect(h.stdout).toMatch(/EXAMPLES/);
      expect(h.stdout).toMatch(/--json/);
    }
    // a provider's options are flags of `aim ship <provider>`: the help lists them
    const h = await execa(process.execPath, [runJs, 'ship', '--help']);
    expect(h.stdout).toMatch(/PROVIDERS AND THEIR OPTIONS\n\s+aws \(built-in\)[\s\S]*\n\s+vmware \(built-in\)/);
    expect(h.stdout).toMatch(/--datastore-url VALUE\s+upload to/);
    expect(h.stdout).toMatch(/\[env:\s+AIM_VMWARE_DATASTORE_URL\]/);
    // from the zod schema: kinds, defaults (descriptions wrap where the widest provider option puts the column)
    const words = (text: string) => new RegExp(text.split(' ').map((w) => w.replace(/[()]/g, '\\$&')).join('\\s+'));
    expect(h.stdout).toMatch(words('--memory N memory of the VM in the OVF descriptor, MiB (default: 512)'));
    expect(h.stdout).toMatch(words('--insecure accept a self-signed certificate'));
    // --out is optional: the examples ship to a cloud or a datastore without it
    expect(h.stdout).not.toMatch(/--out.*\(required\)/);
    expect(h.stdout).toMatch(/\$ aim ship aws slim\/nginx:1 --region eu-west-1 +#/);
  });

  // The real end-to-end ship (VMDK + OVA built, uploaded to a local datastore, a 500 cleaned up) is in
  // test/boot/ova-boot.test.ts, which shares the slim nginx image and kernel core with the OVA boot.
  it('vmware --dry-run observes (HEAD only) and shows the plan, as JSON with --json; it changes nothing', async () => {
    // no --out: an upload to a datastore builds in aim's scratch space
    const res = await run<{ dryRun: boolean; outDir?: string; publication?: unknown; plan: { steps: { action: string; subject: string }[]; builds: { format: string }[]; uploads: { file: string; destination: string }[] } }>(
      'ship', 'vmware', 'slim/app:1', '--datastore-url', datastore, '--dry-run',
    );
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.dryRun).toBe(true);
    expect(res.json.outDir).toBeUndefined();
    expect(existsSync(join(repo, 'ship-builds'))).toBe(false);
    expect(res.json.publication).toBeUndefined();
    expect(res.json.plan.steps.map((s) => `${s.action} ${s.subject}`)).toEqual(['build vmdk → vmdk/', 'build ova → ova/', 'upload slim-app-1.vmdk', 'upload slim-app-1.ova']);
    expect(res.json.plan.builds.map((b) => b.format)).toEqual(['vmdk', 'ova']);
    expect(res.json.plan.uploads.map((u) => u.destination)).toEqual([
      datastore.replace('/folder/aim?', '/folder/aim/slim-app-1.vmdk?'),
      datastore.replace('/folder/aim?', '/folder/aim/slim-app-1.ova?'),
    ]);
    expect(existsSync(join(tmp.dir, 'dry'))).toBe(false);
    // observe reads remote state; nothing is written
    expect(requests).toEqual(['HEAD /folder/aim/slim-app-1.vmdk?dcPath=ha-datacenter&dsName=datastore1', 'HEAD /folder/aim/slim-app-1.ova?dcPath=ha-datacenter&dsName=datastore1']);
    const list = await run<{ publications: unknown[] }>('ship', 'list');
    expect(list.json.publications).toEqual([]);
    // without --json: the steps, one line each
    const text = await execa(process.execPath, [runJs, 'ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'dry'), '--datastore-url', datastore, '--dry-run', '--repo', repo], { env: { ...process.env, ...env } });
    expect(text.stdout).toMatch(/^plan: ship [0-9a-f]{12} through vmware\n {2}build +vmdk → vmdk\/\n[\s\S]* {2}upload {2}slim-app-1\.ova {2}→ http:\/\/127\.0\.0\.1/);
  });

  it('takes option values from a template’s ship.<provider> section, below flags, validated by the same schema', async () => {
    const template = join(tmp.dir, 'template.yaml');
    await writeFile(template, `name: app\nship:\n  vmware:\n    name: from-template\n    memory: 1024\n    datastore-url: "${datastore}"\n`);
    const res = await run<{ plan: { name: string; memoryMiB: number; uploads: { file: string }[] } }>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 't1'), '--template', template, '--memory', '768', '--dry-run');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.plan).toMatchObject({ name: 'from-template', memoryMiB: 768 });
    expect(res.json.plan.uploads.map((u) => u.file)).toEqual(['from-template.vmdk', 'from-template.ova']);
    await writeFile(template, 'name: app\nship:\n  vmware:\n    memory: 2\n    colour: red\n');
    const bad = await run<ErrorJson>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 't2'), '--template', template, '--dry-run');
    expect(bad.exitCode).toBe(2);
    expect(bad.json.error.message).toBe('provider vmware: unknown option "colour"');
    await writeFile(template, 'name: app\nship:\n  vmware:\n    memory: 2\n');
    const small = await run<ErrorJson>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 't2'), '--template', template, '--dry-run');
    expect(small.json.error.message).toBe('provider vmware: memory: the VM needs at least 4 MiB');
  });

  it('reports bad provider options and usage as one JSON error with exit 2', async () => {
    const badUrl = await run<ErrorJson>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'b1'), '--datastore-url', 'https://esxi.test/ui/x');
    expect(badUrl.exitCode).toBe(2);
    expect(badUrl.json.error.message).toMatch(/must start with \/folder/);
    const unknown = await run<ErrorJson>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'b2'), '--opt', 'region=eu', '--memory', 'lots');
    expect(unknown.exitCode).toBe(2);
    expect(unknown.json.error.message).toBe('provider vmware: unknown option "region"; memory: "lots" is not a number');
    const flag = await run<ErrorJson>('ship', 'vmware', 'slim/app:1', '--out', join(tmp.dir, 'b3'), '--regoin', 'eu');
    expect(flag.exitCode).toBe(2);
    expect(flag.json.error).toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/--regoin/) });
    // without a datastore the VMDK and OVA are the result: they need a directory the user names
    const noOut = await run<ErrorJson>('ship', 'vmware', 'slim/app:1');
    expect(noOut.exitCode).toBe(2);
    expect(noOut.json.error).toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/without --datastore-url.*give --out DIR/), hint: expect.stringMatching(/--out DIR/) });
    expect(existsSync(join(repo, 'ship-builds'))).toBe(false);
    for (const d of ['b1', 'b2', 'b3']) expect(existsSync(join(tmp.dir, d))).toBe(false);
  });
});
