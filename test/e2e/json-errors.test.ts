/**
 * With --json every command prints exactly one JSON document, on failure too:
 * `{ "error": { "code", "message", "hint", … }, "result": <partial result or null> }`.
 * The commands come from oclif's own list of aim's commands, so a new command is covered
 * without touching this test.
 */
import { Config } from '@oclif/core';
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, runJs } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface Outcome {
  exitCode: number;
  stdout: string;
  doc: unknown;
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
let notARepo: string;
let commands: { id: string; args: string[] }[];

beforeAll(async () => {
  tmp = await tempDir();
  notARepo = join(tmp.dir, 'not-a-repository');
  await writeFile(notARepo, 'a file where a repository should be\n');
  const config = await Config.load(projectRoot);
  commands = config.commands
    .filter((c) => c.pluginName === config.pjson.name)
    .map((c) => ({ id: c.id, args: Object.keys(c.args).map((name) => `no-such-${name}`) }))
    .sort((a, b) => a.id.localeCompare(b.id));
});
afterAll(async () => tmp?.cleanup());

/** Runs aim with --json; `doc` is stdout parsed as ONE JSON document (two documents do not parse). */
async function aimJson(argv: string[]): Promise<Outcome> {
  const r = await execa(process.execPath, [runJs, ...argv, '--json'], { reject: false, timeout: 120_000, env: { AIM_REPO: notARepo } });
  let doc: unknown;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    doc = undefined;
  }
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, doc };
}

/** Runs `run` for every command, a few at a time (each is a process of its own). */
async function eachCommand(run: (c: (typeof commands)[number]) => Promise<Outcome>): Promise<[(typeof commands)[number], Outcome][]> {
  const out: [(typeof commands)[number], Outcome][] = [];
  const queue = [...commands];
  await Promise.all(
    Array.from({ length: 3 }, async () => {
      for (let c = queue.shift(); c; c = queue.shift()) out.push([c, await run(c)]);
    }),
  );
  return out.sort(([a], [b]) => a.id.localeCompare(b.id));
}

function expectErrorDocument(cmd: string, o: Outcome): { error: { code: string; message: string; exitCode: number }; result: unknown } {
  expect(o.doc, `${cmd}: stdout is not exactly one JSON document:\n${o.stdout}`).toBeDefined();
  const doc = o.doc as { error: { code: string; message: string; exitCode: number }; result: unknown };
  expect(Object.keys(doc).sort(), cmd).toEqual(['error', 'result']);
  expect(doc.error.code, cmd).toMatch(/^E_[A-Z_]+$/);
  expect(doc.error.message, cmd).not.toBe('');
  expect(doc.error.exitCode, cmd).toBe(o.exitCode);
  expect(o.exitCode, cmd).not.toBe(0);
  return doc;
}

describe('--json on failure: exactly one document with error.code, for every command', () => {
  it('finds aim’s commands (and only aim’s) in oclif’s manifest', () => {
    const ids = commands.map((c) => c.id);
    expect(ids).toEqual(expect.arrayContaining(['verify', 'profile:run', 'boot', 'slim', 'image:import', 'repo:init']));
    expect(ids.some((id) => id.startsWith('plugins'))).toBe(false);
  });

  it('a usage error (an unknown flag; or, for a command that passes unknown flags on, the bad arguments)', async () => {
    const outcomes = await eachCommand((c) => aimJson([...c.id.split(':'), ...c.args, '--no-such-flag']));
    for (const [c, o] of outcomes) {
      const cmd = `aim ${c.id.replaceAll(':', ' ')}`;
      const doc = expectErrorDocument(cmd, o);
      expect(doc.error.code, cmd).toBe('E_CONFIG');
      expect(doc.result, cmd).toBeNull();
    }
  }, 600_000);

  it('a failure inside the command (arguments that name nothing, a file where the repository should be)', async () => {
    const succeeded: string[] = [];
    const outcomes = await eachCommand((c) => aimJson([...c.id.split(':'), ...c.args]));
    for (const [c, o] of outcomes) {
      const cmd = `aim ${c.id.replaceAll(':', ' ')}`;
      if (o.exitCode === 0) {
        // a command that needs neither its arguments nor a repository may succeed: one document still
        expect(o.doc, `${cmd}:\n${o.stdout}`).toBeDefined();
        expect(o.doc, cmd).not.toHaveProperty('error');
        succeeded.push(c.id);
        continue;
      }
      expectErrorDocument(cmd, o);
    }
    expect(succeeded).toEqual(['provider:list']);
  }, 600_000);
});
