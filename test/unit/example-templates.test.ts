import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTemplate, templateCopyIns } from '../../src/core/template/index.js';
import { projectRoot } from '../helpers/cli.js';
import { goldRecipe } from '../helpers/examples.js';
import { SERVICE_EXAMPLES, SERVICE_GROUPS } from '../helpers/service-examples.js';

const OWN_GOLD = ['nginx', 'redis', 'python-http'];
/** Examples that carry an image to a provider, and the integration test that runs each end to end. */
const SHIP_EXAMPLES: Record<string, string> = { 'aws-nginx': 'test/integration/ship-aws.test.ts' };

describe('example templates', () => {
  it('every example directory with a template is valid and runs in the integration tests', async () => {
    const dirs = [];
    for (const d of await readdir(join(projectRoot, 'examples'))) if (existsSync(join(projectRoot, 'examples', d, 'template.yaml'))) dirs.push(d);
    expect(dirs.sort()).toEqual([...OWN_GOLD, ...SERVICE_EXAMPLES, ...Object.keys(SHIP_EXAMPLES)].sort());
    for (const [dir, test] of Object.entries(SHIP_EXAMPLES)) expect(await readFile(join(projectRoot, test), 'utf8'), test).toContain(`'${dir}'`);
    for (const dir of dirs) {
      const t = await loadTemplate(join(projectRoot, 'examples', dir, 'template.yaml'));
      const name = t.template.name;
      expect(name, dir).toMatch(new RegExp(`^${dir}`));
      expect(t.template.gold?.tag, dir).toBe(`gold/${name}:1`);
      expect(t.template.slim?.tags, dir).toEqual([`slim/${name}:1`]);
      expect(t.template.gold?.include.length, dir).toBeGreaterThan(0);
      // real probes: more than one, each a request or a client command, never only "port open"
      expect(t.template.profile?.probes.length, dir).toBeGreaterThanOrEqual(2);
    }
  });

  it.each(Object.entries(SERVICE_GROUPS))('the %s service examples can share one gold tree: no two copy into the same place', async (_, dirs) => {
    const seen = new Map<string, string>();
    for (const dir of dirs) {
      for (const spec of (await goldRecipe(dir)).copyIns) {
        const dest = spec.slice(spec.lastIndexOf(':') + 1);
        expect(seen.get(dest), `${dir} and ${seen.get(dest)} copy into ${dest}`).toBeUndefined();
        seen.set(dest, dir);
      }
      const loaded = await loadTemplate(join(projectRoot, 'examples', dir, 'template.yaml'));
      for (const spec of templateCopyIns(loaded)) expect(existsSync(spec.slice(0, spec.lastIndexOf(':'))), spec).toBe(true);
    }
  });
});
