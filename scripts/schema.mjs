#!/usr/bin/env node
// npm run schema: writes templates/image-template.schema.json from the zod schema (the source of
// truth). Commit the result; test/unit/template.test.ts fails while it is stale.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { templateJsonSchema } = await import(join(root, 'dist', 'src', 'core', 'template', 'schema.js'));
const out = join(root, 'templates', 'image-template.schema.json');
writeFileSync(out, JSON.stringify(templateJsonSchema(), null, 2) + '\n');
console.log(`schema: wrote ${out}`);
