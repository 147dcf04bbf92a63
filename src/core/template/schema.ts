/**
 * The image template: one YAML file that says how a gold image is built, how its workload is
 * profiled, and how it is slimmed. This zod schema is the source of truth; the JSON Schema in
 * templates/image-template.schema.json is generated from it (`npm run schema`).
 */
import { z } from 'zod';

const duration = z.string().regex(/^\d+(\.\d+)?(ms|s|m)?$/, 'a duration such as 500ms, 20s or 2m');
const absolute = z.string().regex(/^\//, 'an absolute path');

export const ProbeSchema = z.union([
  z.strictObject({ http: z.url({ protocol: /^https?$/ }).describe('URL to GET inside the sandbox once ready') }),
  z.strictObject({ exec: z.string().min(1).describe('command run with the image\'s /bin/sh -c inside the sandbox') }),
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
        'ready-port': z.number().int().min(1).max(65535).optional(),
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
    entrypoint: z
      .union([z.string().min(1), z.array(z.string()).min(1)])
      .optional()
      .describe('what the slim image starts: a shell command (run with /bin/sh -c) or an argv; default: the profile\'s command'),
  })
  .describe('aim image template');

export type ImageTemplate = z.output<typeof ImageTemplateSchema>;

/** The JSON Schema editors use to validate templates (committed as templates/image-template.schema.json). */
export function templateJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(ImageTemplateSchema, { io: 'input' }),
    $id: 'https://aim.invalid/schemas/image-template.schema.json',
    title: 'aim image template',
  };
}
