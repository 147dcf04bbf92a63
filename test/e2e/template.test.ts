import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aim, projectRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let repo: string;
const run = <T = Record<string, unknown>>(args: string[], env: Record<string, string> = {}) => aim<T>([...args, '--repo', repo], { env });
type Err = { error: { code: string; message: string; exitCode: number } };
const nginxTemplate = join(projectRoot, 'examples', 'nginx', 'template.yaml');

beforeAll(async () => {
  tmp = await tempDir();
  repo = join(tmp.dir, 'repo');
  expect((await run(['repo', 'init'])).exitCode).toBe(0);
});
afterAll(async () => tmp?.cleanup());

describe('--template on the CLI', () => {
  it('image gold debian --template: packages and copy-ins of the template become the mmdebstrap command', async () => {
    const res = await run<{ command: string[] }>(['image', 'gold', 'debian', '--template', nginxTemplate, '--include', 'curl', '--dry-run']);
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.json.command).toContain('--include=nginx,curl');
    expect(res.json.command).toContain(`--customize-hook=sync-in ${join(projectRoot, 'examples', 'nginx', 'site')} /var/www/html`);
  });

  it('a template with problems: exit 2, every problem on its own `path: message` line', async () => {
    const bad = join(tmp.dir, 'bad.yaml');
    await writeFile(bad, 'name: ok\nprofile:\n  run: x\n  ready-port: 0\n  probes: [{ gopher: x }]\nslim: { tagz: [] }\n');
    const res = await run<Err>(['slim', '--template', bad]);
    expect(res.exitCode).toBe(2);
    expect(res.json.error.code).toBe('E_CONFIG');
    const lines = res.json.error.message.split('\n');
    expect(lines[0]).toMatch(/3 problem\(s\)/);
    expect(lines.slice(1).map((l) => l.split(':')[0])).toEqual(['profile.ready-port', 'profile.probes.0', 'slim']);
  });

  it('a missing template is not found (exit 3); missing settings name every way to give them (exit 2)', async () => {
    expect((await run<Err>(['verify', '--template', join(tmp.dir, 'nope.yaml')])).exitCode).toBe(3);
    const res = await run<Err>(['slim', '--profile', 'web']);
    expect(res.exitCode).toBe(2);
    expect(res.json.error.message).toMatch(/no gold image: give an IMAGE argument, set AIM_GOLD, or use a --template with gold\.tag/);
  });

  it('AIM_* variables are read: AIM_GOLD names the image slim looks up', async () => {
    const res = await run<Err>(['slim', '--profile', 'web'], { AIM_GOLD: 'gold/from-env:1' });
    expect(res.exitCode).toBe(3);
    expect(res.json.error.message).toMatch(/gold\/from-env:1/);
    const bad = await run<Err>(['profile', 'run', 'x:1', '--run', 'true', '--name', 'n'], { AIM_READY_PORT: 'http' });
    expect(bad.exitCode).toBe(2);
    expect(bad.json.error.message).toMatch(/AIM_READY_PORT http: not a TCP port/);
  });
});
