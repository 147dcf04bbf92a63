#!/usr/bin/env node
// The analysers read many blobs at once (async reads); libuv's default pool of 4 threads
// serialises them. Must be set before the pool starts, hence before anything else is loaded.
process.env.UV_THREADPOOL_SIZE ??= '16';
// Before oclif, whose DEBUG lines print argv: every DEBUG line is redacted (credentials), and an
// error no command caught is still reported as an aim error.
await import('../dist/src/lib/log.js');
(await import('../dist/src/cli/crash.js')).installCrashHandler();
const { execute, settings } = await import('@oclif/core');
// aim runs its compiled dist/ and plugins their compiled JS: never try to register tsx/ts-node and
// load TypeScript sources, which oclif otherwise does for linked plugins and under NODE_ENV=test.
settings.enableAutoTranspile = false;
await execute({ dir: import.meta.url });
