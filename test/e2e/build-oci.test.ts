import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, runJs } from '../helpers/cli.js';
import { goldTar } from '../helpers/gold.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEveryTypeTree } from '../helpers/tree.js';

interface Built {
  imageId: string;
  artifacts: { path: string; kind: string; sha256: string }[];
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
let goldId: string;
const run = <T = Record<string, unknown>>(...args: string[]) => aim<T>([...args, '--repo', repo]);

beforeAll(async () => {
  tmp = await tempDir('aim-oci-');
  repo = join(tmp.dir, 'repo');
  expect((await run('repo', 'init')).exitCode).toBe(0);
  const imp = await run<{ id: string }>('image', 'import', await goldTar('nginx'), '--tag', 'gold/nginx:1');
  expect(imp.exitCode, imp.stderr).toBe(0);
  goldId = imp.json.id;
}, 900_000);
afterAll(async () => tmp.cleanup());

describe('aim build --format oci', () => {
  it('writes a layout skopeo and umoci accept, which re-imports to the same image, reproducibly', async () => {
    const out = join(tmp.dir, 'oci-a');
    const built = await run<Built>('build', 'gold/nginx:1', '--format', 'oci', '--ref', 'nginx:1', '--out', out);
    expect(built.exitCode, built.stderr).toBe(0);
    expect(built.json.artifacts.map((a) => a.kind)).toContain('OCI layer (tar+gzip)');

    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.annotations['org.opencontainers.image.ref.name']).toBe('nginx:1');

    const inspected = JSON.parse((await execa('skopeo', ['inspect', `oci:${out}:nginx:1`])).stdout) as { Digest: string; Architecture: string; Os: string; Layers: string[] };
    expect(inspected.Digest).toBe(index.manifests[0]!.digest);
    expect(inspected.Architecture).toBe('amd64'); // from the ELF facts of nginx's x86-64 binaries
    expect(inspected.Os).toBe('linux');
    expect(inspected.Layers).toHaveLength(1);

    // umoci verifies every digest and the diff_id while unpacking the layer
    const bundle = join(tmp.dir, 'bundle');
    await execa('umoci', ['unpack', '--rootless', '--image', `${out}:nginx:1`, bundle], { timeout: 300_000 });
    expect(existsSync(join(bundle, 'rootfs', 'usr', 'sbin', 'nginx'))).toBe(true);

    const back = await run<{ id: string }>('image', 'import', out, '--ref', 'nginx:1');
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.json.id).toBe(goldId);

    const again = await run<Built>('build', 'gold/nginx:1', '--format', 'oci', '--ref', 'nginx:1', '--out', join(tmp.dir, 'oci-b'));
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.json.artifacts.map((a) => a.sha256)).toEqual(built.json.artifacts.map((a) => a.sha256));
  });

  it('round-trips every entry type (devices, xattrs, hardlinks, non-UTF-8 names) through the layer', async () => {
    const tree = join(tmp.dir, 'every');
    await buildEveryTypeTree(tree);
    const imp = await run<{ id: string }>('image', 'import', tree, '--tag', 'fixture/every:1');
    expect(imp.exitCode, imp.stderr).toBe(0);
    const out = join(tmp.dir, 'oci-every');
    const built = await run<Built>('build', 'fixture/every:1', '--format', 'oci', '--out', out);
    expect(built.exitCode, built.stderr).toBe(0);
    await execa('skopeo', ['inspect', `oci:${out}:latest`]);
    const back = await run<{ id: string }>('image', 'import', out);
    expect(back.json.id).toBe(imp.json.id);
  });

  it('refuses names a layer cannot carry (".wh.") before writing anything, exit 4', async () => {
    const tree = join(tmp.dir, 'whiteout');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', '.wh.config'), 'looks like a whiteout\n');
    await writeFile(join(tree, 'etc', 'ok'), 'fine\n');
    expect((await run('image', 'import', tree, '--tag', 'fixture/wh:1')).exitCode).toBe(0);
    const out = join(tmp.dir, 'oci-wh');
    const res = await run<{ error: { code: string; message: string } }>('build', 'fixture/wh:1', '--format', 'oci', '--out', out);
    expect(res.exitCode).toBe(4);
    expect(res.json.error.code).toBe('E_OCI_WHITEOUT_NAME');
    expect(res.json.error.message).toMatch(/\/etc\/\.wh\.config/);
    expect(existsSync(out)).toBe(false);
    // the tar format keeps any name
    expect((await run('build', 'fixture/wh:1', '--format', 'tar', '--out', join(tmp.dir, 'tar-wh'))).exitCode).toBe(0);
  });

  it('rejects an invalid --ref and usage errors as JSON (exit 2)', async () => {
    const bad = await run<{ error: { code: string } }>('build', 'gold/nginx:1', '--format', 'oci', '--ref', 'no spaces', '--out', join(tmp.dir, 'oci-ref'));
    expect(bad.exitCode).toBe(2);
    expect(bad.json.error.code).toBe('E_CONFIG');
    expect(existsSync(join(tmp.dir, 'oci-ref'))).toBe(false);
    const usage = await run<{ error: { code: string; message: string; exitCode: number } }>('build', 'gold/nginx:1', '--format', 'nope', '--out', join(tmp.dir, 'x'));
    expect(usage.exitCode).toBe(2);
    expect(usage.json.error).toMatchObject({ code: 'E_CONFIG', exitCode: 2 });
    expect(usage.json.error.message).toMatch(/nope/);
  });

  it('stops on Ctrl-C with exit 130 and removes the partial layout', async () => {
    const out = join(tmp.dir, 'oci-int');
    const child = execa(process.execPath, [runJs, 'build', 'gold/nginx:1', '--format', 'oci', '--out', out, '--repo', repo, '--json'], { reject: false, timeout: 120_000 });
    const started = Date.now();
    while (!existsSync(join(out, 'blobs')) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(join(out, 'blobs'))).toBe(true);
    child.kill('SIGINT');
    const res = await child;
    expect(res.exitCode).toBe(130);
    expect(JSON.parse(res.stdout)).toMatchObject({ error: { code: 'E_INTERRUPTED', exitCode: 130 } });
    expect(existsSync(out)).toBe(false);
  });
});
