/**
 * A provider's options come from one zod object schema: its keys are the option names
 * (`--datastore-url`, `--opt datastore-url=…`), `.describe()` or `.meta({ description })` the help,
 * `.meta({ env: 'AIM_…' })` the environment variable read when the option is not given, and
 * `.meta({ secret: true })` an option that is never written to the journal and is hidden from
 * every output. Validation, help, flags and the values a template may set all derive from it.
 */
import { z } from 'zod';
import { ConfigError } from '../../lib/errors.js';
import { addSecret } from '../../lib/redact.js';

/** The schema a provider declares its options with: a zod object (any zod 4 object schema). */
export type OptionsSchema = z.ZodObject;

/** One option as help, flags and `aim provider list` show it, read off the schema. */
export interface OptionSpec {
  /** kebab-case, e.g. "datastore-url": the flag is `--datastore-url`. */
  name: string;
  description: string;
  /** What the command line gives: a string, a bare flag, a number or one of `choices`. */
  type: 'string' | 'boolean' | 'number' | 'enum';
  choices?: string[];
  /** A list: the flag is repeatable (`--tag a=1 --tag b=2`); from the environment, comma-separated. */
  multiple: boolean;
  /** A list whose flag values may also be comma-separated (`--copy-to-regions a,b`): meta `commaSeparated: true`. */
  commaSeparated?: boolean;
  required: boolean;
  default?: unknown;
  env?: string;
  secret: boolean;
}

/** Raw values as the command line gives them: strings, true/false for bare flags, lists for repeated ones. */
export type GivenOptions = Record<string, string | boolean | string[]>;

/** Option values in the schema's input form (JSON): what is validated, and what the journal keeps for resume. */
export type OptionInput = Record<string, unknown>;

const NAME = /^[a-z][a-z0-9-]*$/;

interface JsonProp {
  type?: string | string[];
  enum?: unknown[];
  items?: JsonProp;
  description?: string;
  default?: unknown;
  env?: unknown;
  secret?: unknown;
  commaSeparated?: unknown;
}

function kindOf(p: JsonProp): Pick<OptionSpec, 'type' | 'choices'> {
  if (Array.isArray(p.enum) && p.enum.every((v) => typeof v === 'string')) return { type: 'enum', choices: p.enum as string[] };
  const t = Array.isArray(p.type) ? p.type.find((x) => x !== 'null') : p.type;
  if (t === 'boolean') return { type: 'boolean' };
  if (t === 'number' || t === 'integer') return { type: 'number' };
  return { type: 'string' };
}

/** Whether a value is a zod object schema (from aim's zod or a plugin's own copy of zod 4). */
export function isOptionsSchema(value: unknown): value is OptionsSchema {
  const v = value as { safeParse?: unknown; shape?: unknown; _zod?: { def?: { type?: unknown } } } | null;
  return typeof v === 'object' && v !== null && typeof v.safeParse === 'function' && typeof v.shape === 'object' && v._zod?.def?.type === 'object';
}

const specCache = new WeakMap<object, OptionSpec[]>();

/** The options a schema declares, in declaration order. A name that is not kebab-case is a ConfigError. */
export function optionSpecs(schema: OptionsSchema): OptionSpec[] {
  const cached = specCache.get(schema);
  if (cached) return cached;
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, JsonProp>; required?: string[] };
  const required = new Set(json.required ?? []);
  const specs = Object.entries(json.properties ?? {}).map(([name, p]): OptionSpec => {
    if (!NAME.test(name)) throw new ConfigError(`option "${name}" must be lower-case letters, digits and dashes`);
    const list = p.type === 'array' || (Array.isArray(p.type) && p.type.includes('array'));
    return {
      name,
      description: p.description ?? '',
      ...kindOf(list ? (p.items ?? {}) : p),
      multiple: list,
      ...(list && p.commaSeparated === true ? { commaSeparated: true } : {}),
      required: required.has(name),
      ...(p.default !== undefined ? { default: p.default } : {}),
      ...(typeof p.env === 'string' ? { env: p.env } : {}),
      secret: p.secret === true,
    };
  });
  specCache.set(schema, specs);
  return specs;
}

const TRUE = /^(true|1|yes)$/i;
const FALSE = /^(false|0|no)$/i;

/** One raw value turned into the type the option takes; a problem is returned as text. */
function convert(spec: OptionSpec, raw: unknown): { value?: unknown; problem?: string } {
  const one = (v: unknown): { value?: unknown; problem?: string } => {
    if (typeof v !== 'string') return { value: v };
    if (spec.type === 'boolean') {
      if (TRUE.test(v)) return { value: true };
      if (FALSE.test(v)) return { value: false };
      return { problem: `"${v}" is not true or false` };
    }
    if (spec.type === 'number') {
      const n = v.trim() === '' ? Number.NaN : Number(v);
      return Number.isFinite(n) ? { value: n } : { problem: `"${v}" is not a number` };
    }
    return { value: v };
  };
  if (spec.type !== 'boolean' && raw === true) return { problem: 'needs a value' };
  if (!spec.multiple) return Array.isArray(raw) ? { problem: 'given more than once' } : one(raw);
  const split = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const list = Array.isArray(raw) ? (spec.commaSeparated ? raw.flatMap((v) => (typeof v === 'string' ? split(v) : [v])) : raw) : typeof raw === 'string' ? split(raw) : [raw];
  const out: unknown[] = [];
  for (const item of list) {
    const c = one(item);
    if (c.problem) return c;
    out.push(c.value);
  }
  return { value: out };
}

/**
 * Merges the sources of option values, highest first: command line (`given`), then the
 * environment variable each option names, then `file` (a template's values). Unknown names and
 * values of the wrong kind are all reported at once. The result is the schema's input form.
 */
export function gatherOptions(provider: string, schema: OptionsSchema, given: GivenOptions, env: NodeJS.ProcessEnv, file: OptionInput = {}): OptionInput {
  const specs = optionSpecs(schema);
  const problems: string[] = [];
  for (const name of [...Object.keys(given), ...Object.keys(file)]) {
    if (!specs.some((s) => s.name === name)) problems.push(`unknown option "${name}"`);
  }
  const input: OptionInput = {};
  for (const spec of specs) {
    let raw: unknown;
    if (Object.hasOwn(given, spec.name)) raw = given[spec.name];
    else if (spec.env && env[spec.env] !== undefined && env[spec.env] !== '') raw = env[spec.env];
    else if (Object.hasOwn(file, spec.name)) raw = file[spec.name];
    if (raw === undefined) continue;
    const c = convert(spec, raw);
    if (c.problem) problems.push(`${spec.name}: ${c.problem}`);
    else input[spec.name] = c.value;
  }
  if (problems.length > 0) throw optionsError(provider, specs, problems);
  return input;
}

/**
 * Validates option input against the schema: every problem at once, as `name: message`, a
 * missing required option as `name is required (or ENV)`. Secret values are hidden from output
 * from here on.
 */
export function validateOptions<S extends OptionsSchema>(provider: string, schema: S, input: OptionInput): z.output<S> {
  const specs = optionSpecs(schema);
  for (const spec of specs) {
    const v = input[spec.name];
    if (spec.secret && typeof v === 'string' && v !== '') addSecret(v);
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data as z.output<S>;
  const problems = parsed.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? '');
    const spec = specs.find((s) => s.name === name);
    if (spec && input[name] === undefined && issue.path.length === 1) return `${name} is required${spec.env ? ` (or ${spec.env})` : ''}`;
    const where = issue.path.map(String).join('.');
    return where ? `${where}: ${issue.message}` : issue.message;
  });
  throw optionsError(provider, specs, problems);
}

/** The input form without secret options: what the journal keeps (secrets come from the environment again on resume). */
export function journalledOptions(schema: OptionsSchema, input: OptionInput): OptionInput {
  const secret = new Set(optionSpecs(schema).filter((s) => s.secret).map((s) => s.name));
  return Object.fromEntries(Object.entries(input).filter(([k]) => !secret.has(k)));
}

/** `--name VALUE` as help and hints write it. */
export function flagUsage(spec: OptionSpec): string {
  const value = spec.type === 'boolean' ? '' : spec.type === 'enum' ? ` ${spec.choices!.join('|')}` : spec.type === 'number' ? ' N' : ' VALUE';
  return `--${spec.name}${value}`;
}

function optionsError(provider: string, specs: OptionSpec[], problems: string[]): ConfigError {
  const known = specs.map(flagUsage).join(', ') || 'none';
  return new ConfigError(`provider ${provider}: ${problems.join('; ')}`, { hint: `options of ${provider}: ${known}` });
}
