/**
 * The image template: one YAML file that says how a gold image is built, how its workload is
 * profiled, and how it is slimmed. This zod schema is the source of truth; the JSON Schema in
 * templates/image-template.schema.json is generated from it (`npm run schema`).
 */
import { z } from 'zod';

const duration = z.string().regex(/^\d+(\.\d+)?(ms|s|m)?$/, 'a duration such as 500ms, 20s or 2m');
const absolute = z.string().regex(/^\//, 'an absolute path');

const regex = z.string().min(1).refine((text) => {
  try {
    new RegExp(text);
    return true;
  } catch {
    return false;
  }
}, 'a regular expression');

/** A probe and its expectation; without one, an HTTP probe expects any 2xx status and an exec probe exit status 0. */
export const ProbeSchema = z.union([
  z.strictObject({
    http: z.url({ protocol: /^https?$/ }).describe('URL to GET inside the sandbox, tried until it meets its expectation'),
    status: z.number().int().min(100).max(599).optional().describe('the HTTP status the answer must have [default: any 2xx]'),
    bodyContains: z.string().min(1).optional().describe('text the response body must contain'),
  }),
  z.strictObject({
    exec: z.string().min(1).describe('command run with the image\'s /bin/sh -c inside the sandbox, tried until it meets its expectation'),
    exitCode: z.number().int().min(0).max(255).optional().describe('the exit status the command must have [default: 0]'),
    outputContains: z.string().min(1).optional().describe('text its stdout or stderr must contain'),
  }),
]);

export const ImageTemplateSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits, ".", "_" and "-"').describe('template name; also the default profile name'),
    description: z.string().optional(),
    gold: z
      .strictObject({
        tag: z.string().min(1).optional().describe('name:tag of the gold image'),
        suite: z.string().regex(/^[a-z][a-z0-9-]*$/).default('bookworm'),
        variant: z.enum(['minbase', 'essential', 'apt', 'required', 'important', 'standard']).default('minbase'),
        include: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name')).default([]),
        'copy-in': z
          .array(
            z.strictObject({
              src: z.string().min(1).describe('file or directory on the host, relative to the template file'),
              dest: absolute.describe('directory in the image: a directory\'s contents, or a file, land there'),
            }),
          )
          .default([]),
      })
      .optional()
      .describe('how the gold image is built (aim image gold debian)'),
    profile: z
      .strictObject({
        run: z.string().min(1).describe('workload command, run with the image\'s /bin/sh -c'),
        'ready-port': z.number().int().min(1).max(65535).optional().describe('TCP port awaited before the probes (an HTTP probe waits for its own port anyway)'),
        'ready-log': regex.optional().describe('regular expression: a line of the workload\'s stdout or stderr awaited before the probes'),
        'ready-timeout': duration.optional().describe('how long after its start the workload may take to be ready: ready-log line, ready-port and every probe met once [default: 60s]'),
        duration: duration.optional(),
        'probe-timeout': duration.optional(),
        probes: z.array(ProbeSchema).default([]),
        unit: z
          .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
          .optional()
          .describe('systemd unit(s) whose RuntimeDirectory=, StateDirectory=, LogsDirectory=, CacheDirectory= are created before the workload starts; default: the units whose ExecStart= runs a program of the workload'),
      })
      .optional()
      .describe('how the workload is traced (aim profile run) and replayed (aim verify)'),
    slim: z
      .strictObject({
        keep: z.array(z.string().min(1)).default([]).describe('globs of paths to keep'),
        drop: z.array(z.string().min(1)).default([]).describe('globs of paths to drop unless the workload needs them'),
        'keep-packages': z.array(z.string().min(1)).default([]),
        tags: z.array(z.string().min(1)).default([]).describe('name:tag of the slim image'),
      })
      .optional(),
    ship: z
      .record(z.string().regex(/^[a-z][a-z0-9-]*$/, 'a provider name'), z.record(z.string(), z.unknown()))
      .optional()
      .describe('option values for aim ship <provider>, per provider (checked against that provider’s options when shipping; flags and environment win)'),
    entrypoint: z
      .union([z.string().min(1), z.array(z.string()).min(1)])
      .optional()
      .describe('what the slim image starts: a shell command (run with /bin/sh -c) or an argv; default: the profile\'s command'),
  })
  .describe('aim image template');

export type ImageTemplate = z.output<typeof ImageTemplateSchema>;
export type TemplateProbe = z.output<typeof ProbeSchema>;

/** The JSON Schema editors use to validate templates (committed as templates/image-template.schema.json). */
export function templateJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(ImageTemplateSchema, { io: 'input' }),
    $id: 'https://aim.invalid/schemas/image-template.schema.json',
    title: 'aim image template',
  };
}
