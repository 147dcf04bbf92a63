import type { Tags } from './aws-state.js';
import { Ec2Error } from './ec2-error.js';

export interface Filter {
  Name?: string;
  Values?: string[];
}

/** A filter value with EC2's wildcards: `*` any run of characters, `?` one; a backslash escapes them. */
export function wildcard(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * What a resource answers for each filter name: a value, several, or undefined when it has none.
 * `tag:KEY` and `tag-key` are answered from the resource's tags.
 */
export type FilterValues = Record<string, (() => string | boolean | number | (string | undefined)[] | undefined) | undefined>;

/**
 * Whether a resource passes every filter (values of one filter are ORed, filters are ANDed).
 * An unknown filter name is InvalidParameterValue, as EC2 says it.
 */
export function matchesFilters(filters: Filter[] | undefined, tags: Tags | undefined, values: FilterValues): boolean {
  for (const f of filters ?? []) {
    const name = f.Name ?? '';
    let have: (string | undefined)[];
    if (name.startsWith('tag:') && tags) have = [tags.get(name.slice(4))];
    else if (name === 'tag-key' && tags) have = [...tags.keys()];
    else if (name === 'tag-value' && tags) have = [...tags.values()];
    else {
      const get = Object.hasOwn(values, name) ? values[name] : undefined;
      if (!get) throw new Ec2Error('InvalidParameterValue', `The filter '${name}' is invalid`);
      const v = get();
      have = (Array.isArray(v) ? v : [v]).map((x) => (x === undefined ? undefined : String(x)));
    }
    const wanted = (f.Values ?? []).map(wildcard);
    if (!wanted.some((w) => have.some((h) => h !== undefined && w.test(h)))) return false;
  }
  return true;
}

/** MaxResults / NextToken paging of a Describe* answer (NextToken is the offset, opaque to the caller). */
export function page<T>(items: T[], input: { MaxResults?: number; NextToken?: string }, range: [number, number] = [5, 1000]): { items: T[]; NextToken?: string } {
  let from = 0;
  if (input.NextToken !== undefined) {
    const m = /^fake-next-(\d+)$/.exec(Buffer.from(input.NextToken, 'base64').toString('utf8'));
    if (!m) throw new Ec2Error('InvalidNextToken', 'The specified NextToken is not valid.');
    from = Number(m[1]);
  }
  if (input.MaxResults === undefined) return { items: items.slice(from) };
  if (input.MaxResults < range[0] || input.MaxResults > range[1]) {
    throw new Ec2Error('InvalidParameterValue', `Value ( ${input.MaxResults} ) for parameter maxResults is invalid. Parameter must be between ${range[0]} and ${range[1]}.`);
  }
  const slice = items.slice(from, from + input.MaxResults);
  const next = from + input.MaxResults;
  return { items: slice, ...(next < items.length ? { NextToken: Buffer.from(`fake-next-${next}`).toString('base64') } : {}) };
}
