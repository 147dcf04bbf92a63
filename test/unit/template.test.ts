import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveCopyIns, mmdebstrapArgs } from '../../src/core/import/gold-debian.js';
import { goldRecipeKey } from '../../src/core/import/gold-cache.js';
import { loadTemplate, parseTemplate, resolveSettings, templateCopyIns, templateJsonSchema } from '../../src/core/template/index.js';
import { ConfigError, NotFoundError } from '../../src/lib/errors.js';
import { projectRoot } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const MINIMAL = 'name: web\nprofile:\n  run: nginx\n  ready-port: 80\n  duration: 3s\n  probes:\n    - http: http://127.0.0.1:80/\n    - exec: curl -s localhost\nslim:\n  keep: ["/etc/nginx/**"]\n  tags: [slim/web:1]\n';

describe('image template', () => {
  it('the committed JSON Schema is what `npm run schema` generates from the zod schema', async () => {
    const committed = await readFile(join(projectRoot, 'templates', 'image-template.schema.json'), 'utf8');
    expect(committed).toBe(JSON.stringify(templateJsonSchema(), null, 2) + '\n');
    expect(JSON.parse(committed).additionalProperties).toBe(false);
  });

  it('every example template is valid', async () => {
    for (const dir of ['nginx', 'redis', 'python-http']) {
      const t = await loadTemplate(join(projectRoot, 'examples', dir, 'template.yaml'));
      expect(t.template.name).toMatch(/^[a-z]/);
      expect(t.template.profile?.probes.length).toBeGreaterThan(0);
      expect(t.template.slim?.tags.length).toBe(1);
    }
  });

  it('parses a template and fills defaults', () => {
    const t = parseTemplate(MINIMAL);
    expect(t.profile).toMatchObject({ run: 'nginx', 'ready-port': 80, probes: [{ http: 'http://127.0.0.1:80/' }, { exec: 'curl -s localhost' }] });
    expect(t.slim).toEqual({ keep: ['/etc/nginx/**'], drop: [], 'keep-packages': [], tags: ['slim/web:1'] });
  });

  it('reports every problem at once, one `path: message` line each', () => {
    const bad = 'name: Web!\nprofil: {}\nprofile:\n  run: ""\n  ready-port: 70000\n  duration: soon\n  probes:\n    - ftp: x\nslim:\n  keep: 3\n';
    let err: unknown;
    try {
      parseTemplate(bad, 't.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.exitCode).toBe(2);
    const lines = e.message.split('\n');
    expect(lines[0]).toMatch(/^t\.yaml: \d+ problem\(s\)/);
    const paths = lines.slice(1).map((l) => l.split(':')[0]);
    expect(paths).toEqual(expect.arrayContaining(['name', '(top)', 'profile.run', 'profile.ready-port', 'profile.duration', 'profile.probes.0', 'slim.keep']));
    expect(lines.find((l) => l.startsWith('(top)'))).toMatch(/profil/);
  });

  it('probes carry their expectations; a wrong one is reported where it is', () => {
    const t = parseTemplate('name: w\nprofile:\n  run: x\n  ready-log: "^Ready"\n  ready-timeout: 90s\n  probes:\n    - http: http://127.0.0.1/x\n      status: 404\n      bodyContains: Not Found\n    - exec: redis-cli PING\n      outputContains: PONG\n    - exec: "false"\n      exitCode: 1\n');
    expect(resolveSettings({}, {}, { file: 't.yaml', template: t }).probes).toEqual([
      { kind: 'http', url: 'http://127.0.0.1/x', expect: { status: 404, bodyContains: 'Not Found' } },
      { kind: 'exec', command: 'redis-cli PING', expect: { outputContains: 'PONG' } },
      { kind: 'exec', command: 'false', expect: { exitCode: 1 } },
    ]);
    const bad = 'name: w\nprofile:\n  run: x\n  ready-log: "(["\n  probes:\n    - http: http://127.0.0.1/\n      status: 1000\n    - exec: true\n      status: 200\n';
    const e = (() => {
      try {
        parseTemplate(bad, 't.yaml');
      } catch (x) {
        return x as Error;
      }
    })();
    expect(e?.message).toMatch(/profile\.ready-log: a regular expression/);
    expect(e?.message).toMatch(/profile\.probes\.0/);
    expect(e?.message).toMatch(/profile\.probes\.1/);
  });

  it('reports YAML syntax errors with the line', () => {
    expect(() => parseTemplate('name: [web\nprofile: 1\n', 'x.yaml')).toThrow(/x\.yaml:\d+:\d+: /);
  });

  it('a missing template file is not found (exit 3)', async () => {
    await expect(loadTemplate('/nonexistent/aim-template.yaml')).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('settings precedence: flags > AIM_* > template > defaults', () => {
  const loaded = { file: '/x/t.yaml', template: parseTemplate(MINIMAL) };

  it('takes the template when nothing else is given, defaults after that', () => {
    const s = resolveSettings({}, {}, loaded);
    expect(s).toMatchObject({ profile: 'web', run: 'nginx', readyPort: 80, readyTimeoutMs: 60_000, durationMs: 3000, probeTimeoutMs: 10_000, tags: ['slim/web:1'] });
    expect(s.readyLog).toBeUndefined();
    expect(s.probes).toEqual([{ kind: 'http', url: 'http://127.0.0.1:80/' }, { kind: 'exec', command: 'curl -s localhost' }]);
    expect(resolveSettings({}, {}).durationMs).toBe(20_000);
  });

  it('environment beats the template, flags beat the environment', () => {
    const env = { AIM_RUN: 'envd', AIM_READY_PORT: '8080', AIM_DURATION: '1m', AIM_PROBE_TIMEOUT: '500ms', AIM_TAGS: 'a/b:1, c/d:2', AIM_PROFILE: 'p', AIM_GOLD: 'g:1', AIM_ENTRYPOINT: 'run-me' };
    const s = resolveSettings({}, env, loaded);
    expect(s).toMatchObject({ run: 'envd', readyPort: 8080, durationMs: 60_000, probeTimeoutMs: 500, tags: ['a/b:1', 'c/d:2'], profile: 'p', gold: 'g:1', entrypoint: ['/bin/sh', '-c', 'run-me'] });
    const f = resolveSettings({ run: 'flag', readyPort: 9, duration: '2s', probeTimeout: '1s', tags: ['x/y:1'], profile: 'q', gold: 'h:1', entrypoint: 'go' }, env, loaded);
    expect(f).toMatchObject({ run: 'flag', readyPort: 9, durationMs: 2000, probeTimeoutMs: 1000, tags: ['x/y:1'], profile: 'q', gold: 'h:1', entrypoint: ['/bin/sh', '-c', 'go'] });
  });

  it('ready-timeout and ready-log: flags > AIM_* > template > default', () => {
    const t = { file: '/x/t.yaml', template: parseTemplate(`${MINIMAL}`.replace('  ready-port: 80\n', '  ready-port: 80\n  ready-log: from-template\n  ready-timeout: 2m\n')) };
    expect(resolveSettings({}, {}, t)).toMatchObject({ readyLog: 'from-template', readyTimeoutMs: 120_000 });
    expect(resolveSettings({}, { AIM_READY_LOG: 'from-env', AIM_READY_TIMEOUT: '5s' }, t)).toMatchObject({ readyLog: 'from-env', readyTimeoutMs: 5_000 });
    expect(resolveSettings({ readyLog: 'from-flag', readyTimeout: '500ms' }, { AIM_READY_LOG: 'from-env', AIM_READY_TIMEOUT: '5s' }, t)).toMatchObject({ readyLog: 'from-flag', readyTimeoutMs: 500 });
    expect(() => resolveSettings({ readyLog: '([' }, {})).toThrow(/--ready-log/);
    expect(() => resolveSettings({}, { AIM_READY_TIMEOUT: '0s' })).toThrow(/AIM_READY_TIMEOUT 0s: the ready timeout must be positive/);
  });

  it('what the repository records about the image (a slim image’s gold and profile) comes after flags and environment, before the template', () => {
    const recorded = { gold: 'recorded-gold-id', profile: 'recorded-profile' };
    expect(resolveSettings({}, {}, loaded, recorded)).toMatchObject({ gold: 'recorded-gold-id', profile: 'recorded-profile' });
    expect(resolveSettings({}, { AIM_PROFILE: 'env' }, loaded, recorded)).toMatchObject({ gold: 'recorded-gold-id', profile: 'env' });
    expect(resolveSettings({ gold: 'flag:1' }, {}, loaded, recorded)).toMatchObject({ gold: 'flag:1', profile: 'recorded-profile' });
    expect(resolveSettings({}, {}, loaded, {})).toMatchObject({ profile: 'web' });
  });

  it('keep/drop rules add up; probes given as flags replace the template’s', () => {
    const s = resolveSettings({ keep: ['/srv/**'], probes: [{ kind: 'http', url: 'http://127.0.0.1:1/' }] }, {}, loaded);
    expect(s.rules.keepGlobs).toEqual(['/etc/nginx/**', '/srv/**']);
    expect(s.probes).toEqual([{ kind: 'http', url: 'http://127.0.0.1:1/' }]);
  });

  it('bad environment values are clear configuration errors', () => {
    expect(() => resolveSettings({}, { AIM_READY_PORT: 'eighty' })).toThrow(/AIM_READY_PORT eighty: not a TCP port/);
    expect(() => resolveSettings({}, { AIM_DURATION: 'forever' })).toThrow(/AIM_DURATION/);
    expect(() => resolveSettings({ probeTimeout: '0s' }, {})).toThrow(/probe timeout must be positive/);
  });
});

describe('gold copy-in', () => {
  it('resolves SRC:DEST, refuses bad ones, and turns them into mmdebstrap hooks', async () => {
    const t = await tempDir();
    try {
      await writeFile(join(t.dir, 'index.html'), 'hi');
      const [dir, file] = await resolveCopyIns([`${t.dir}:/var/www/html/`, `${join(t.dir, 'index.html')}:/srv`]);
      expect(dir).toEqual({ src: t.dir, dest: '/var/www/html', dir: true });
      expect(file).toMatchObject({ dest: '/srv', dir: false });
      const args = mmdebstrapArgs({ suite: 'bookworm', variant: 'minbase', include: [], tags: [], copyIns: [dir!, file!] });
      expect(args).toContain(`--customize-hook=sync-in ${t.dir} /var/www/html`);
      expect(args).toContain(`--customize-hook=copy-in ${join(t.dir, 'index.html')} /srv`);
      await expect(resolveCopyIns([`${t.dir}/missing:/x`])).rejects.toBeInstanceOf(NotFoundError);
      await expect(resolveCopyIns([`${t.dir}:relative`])).rejects.toThrow(/DEST must be an absolute path/);
      expect((await resolveCopyIns([`${t.dir}:/a/../../etc`]))[0]!.dest).toBe('/etc'); // normalised: cannot climb out of /
      await expect(resolveCopyIns(['nocolon'])).rejects.toThrow(/expected SRC:DEST/);
      await expect(resolveCopyIns([`${t.dir}:/x;rm -rf /`])).rejects.toBeInstanceOf(ConfigError);
    } finally {
      await t.cleanup();
    }
  });

  it('the gold cache key follows the content copied in', async () => {
    const t = await tempDir();
    try {
      await writeFile(join(t.dir, 'a.txt'), 'one');
      const copyIns = await resolveCopyIns([`${t.dir}:/srv`]);
      const k1 = await goldRecipeKey({ packages: ['nginx'], copyIns });
      expect(await goldRecipeKey({ packages: ['nginx'], copyIns })).toBe(k1);
      await writeFile(join(t.dir, 'a.txt'), 'two');
      expect(await goldRecipeKey({ packages: ['nginx'], copyIns })).not.toBe(k1);
      expect(await goldRecipeKey({ packages: ['redis-server'], copyIns })).not.toBe(await goldRecipeKey({ packages: ['nginx'], copyIns }));
    } finally {
      await t.cleanup();
    }
  });

  it('template copy-in sources are relative to the template file', async () => {
    const loaded = await loadTemplate(join(projectRoot, 'examples', 'nginx', 'template.yaml'));
    expect(templateCopyIns(loaded)).toEqual([`${join(projectRoot, 'examples', 'nginx', 'site')}:/var/www/html`]);
  });
});
