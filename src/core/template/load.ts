import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, NotFoundError } from '../../lib/errors.js';
import { ImageTemplateSchema, type ImageTemplate } from './schema.js';

/** A template with where it came from: relative copy-in sources are relative to its directory. */
export interface LoadedTemplate {
  file: string;
  template: ImageTemplate;
}

const where = (path: readonly PropertyKey[]) => (path.length === 0 ? '(top)' : path.map(String).join('.'));

/** One line per problem: `path: message`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => {
    const keys = i.code === 'unrecognized_keys' ? ` (allowed keys are listed in templates/image-template.schema.json)` : '';
    return `${where(i.path)}: ${i.message}${keys}`;
  });
}

/** Parses and validates template text; every problem is reported at once, one line each. */
export function parseTemplate(text: string, file = 'template'): ImageTemplate {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => `${file}:${e.linePos?.[0] ? `${e.linePos[0].line}:${e.linePos[0].col}:` : ''} ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
    throw new ConfigError(`${file} is not valid YAML:\n${lines.join('\n')}`, { hint: 'fix the YAML syntax at the line shown' });
  }
  const parsed = ImageTemplateSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const lines = formatIssues(parsed.error.issues);
    throw new ConfigError(`${file}: ${lines.length} problem(s) in the template:\n${lines.join('\n')}`, {
      hint: 'see templates/image-template.schema.json for the allowed keys and values',
    });
  }
  return parsed.data;
}

/** Reads and validates a template file. */
export async function loadTemplate(file: string): Promise<LoadedTemplate> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`template ${file} does not exist`);
    throw new ConfigError(`cannot read template ${file}: ${(e as Error).message}`);
  }
  return { file: path, template: parseTemplate(text, file) };
}

/** Copy-in specs ("SRC:DEST") of a template's gold section, SRC made absolute from the template's directory. */
export function templateCopyIns(loaded: LoadedTemplate): string[] {
  return (loaded.template.gold?.['copy-in'] ?? []).map((c) => `${resolve(dirname(loaded.file), c.src)}:${c.dest}`);
}
