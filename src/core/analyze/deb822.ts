/**
 * A small, forgiving reader for deb822 control data (dpkg's status file, DEP-5 copyright files):
 * paragraphs separated by blank lines, `Name: value` fields, continuation lines starting with a
 * space or tab. It never throws: lines that fit nothing are skipped.
 */

export interface Deb822Field {
  /** Field name as written ("Package", "Files"). */
  name: string;
  /** The text after the colon on the first line, trimmed. */
  first: string;
  /** Continuation lines with the leading space removed; " ." lines become "". */
  rest: string[];
}

export interface Deb822Paragraph {
  fields: Deb822Field[];
  /** 1-based line where the paragraph starts, for messages. */
  line: number;
}

/** Splits deb822 text into paragraphs. Comment lines ("#" in column 0) are ignored. */
export function parseDeb822(text: string): Deb822Paragraph[] {
  const out: Deb822Paragraph[] = [];
  let current: Deb822Paragraph | undefined;
  let field: Deb822Field | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') {
      current = undefined;
      field = undefined;
      continue;
    }
    if (line.startsWith('#')) continue;
    const c = line.charCodeAt(0);
    if (c === 0x20 || c === 0x09) {
      // A continuation line before any field has nothing to continue: skip it.
      if (field) {
        const t = line.slice(1);
        field.rest.push(t.trim() === '.' ? '' : t);
      }
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      field = undefined;
      continue;
    }
    if (!current) {
      current = { fields: [], line: i + 1 };
      out.push(current);
    }
    field = { name: line.slice(0, colon).trim(), first: line.slice(colon + 1).trim(), rest: [] };
    current.fields.push(field);
  }
  return out;
}

/** Field lookup, case-insensitive as deb822 field names are. First occurrence wins. */
export function getField(p: Deb822Paragraph, name: string): Deb822Field | undefined {
  const lower = name.toLowerCase();
  for (const f of p.fields) if (f.name.toLowerCase() === lower) return f;
  return undefined;
}

/** A single-line value: the first line, or undefined when the field is absent or empty. */
export function fieldValue(p: Deb822Paragraph, name: string): string | undefined {
  const f = getField(p, name);
  if (!f) return undefined;
  return f.first === '' ? undefined : f.first;
}

/** A folded value (Depends, Files): all lines joined by a single space. */
export function foldedValue(p: Deb822Paragraph, name: string): string | undefined {
  const f = getField(p, name);
  if (!f) return undefined;
  const v = [f.first, ...f.rest.map((l) => l.trim())].filter((l) => l !== '').join(' ');
  return v === '' ? undefined : v;
}
