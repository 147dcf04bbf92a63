#!/usr/bin/env node
// npm test's first step: lint, typecheck and build side by side (each is mostly one thread; in a
// row they took 37 s of a 2-core machine, side by side about 26 s). Each one's output is printed
// whole when it ends, so nothing interleaves; the step fails when any of them fails, and names it.
import { spawn } from 'node:child_process';

const STEPS = ['lint', 'typecheck', 'build'];

const run = (name) =>
  new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('npm', ['run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('error', (e) => resolve({ name, code: 1, text: `${e.message}\n`, seconds: 0 }));
    child.on('close', (code, signal) => resolve({ name, code: code ?? (signal ? 1 : 0), text: Buffer.concat(out).toString(), seconds: (Date.now() - started) / 1000 }));
  });

const results = await Promise.all(STEPS.map(run));
for (const r of results) {
  process.stdout.write(`> npm run ${r.name}: ${r.code === 0 ? 'ok' : `failed (exit ${r.code})`} in ${r.seconds.toFixed(1)} s\n`);
  if (r.text.trim()) process.stdout.write(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
}
const failed = results.filter((r) => r.code !== 0).map((r) => r.name);
if (failed.length > 0) {
  console.error(`checks: ${failed.join(', ')} failed`);
  process.exit(1);
}
