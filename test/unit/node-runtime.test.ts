import Database from 'better-sqlite3';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

describe('the Node.js the tests run on', () => {
  it('is the one the run asked for (npm test runs unit and e2e again on Node 24), with a working better-sqlite3', async () => {
    const major = process.versions.node.split('.')[0]!;
    console.log(`node ${process.version} (ABI ${process.versions.modules}) at ${process.execPath}`);
    // scripts/test-node24.mjs sets AIM_TEST_NODE_MAJOR; the main run is on the Node that ran npm
    expect(major).toBe(process.env.AIM_TEST_NODE_MAJOR ?? major);
    expect(Number(major)).toBeGreaterThanOrEqual(20);
    // the native addon loads only when built for this Node's ABI
    const db = new Database(':memory:');
    expect(db.prepare('SELECT sqlite_version() AS v').get()).toMatchObject({ v: expect.stringMatching(/^3\./) });
    db.close();
    // the CLI the e2e tests start runs on the same Node, and so does its catalog
    const child = await execa(process.execPath, ['-e', "new (require('better-sqlite3'))(':memory:'); console.log(process.version)"]);
    expect(child.stdout).toBe(process.version);
  });
});
