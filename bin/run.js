#!/usr/bin/env node
// The analysers read many blobs at once (async reads); libuv's default pool of 4 threads
// serialises them. Must be set before the pool starts, hence before anything else is loaded.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { execute } = await import('@oclif/core');
await execute({ dir: import.meta.url });
