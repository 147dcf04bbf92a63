import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../cli/base-command.js';
import { formatBytes, formatCount, shortId, table } from '../cli/format.js';
import { resolveImage } from '../core/query/resolve.js';
import { slimImage, type SlimResult } from '../core/slim/compose.js';
import { loadTemplate, requireSetting, resolveSettings } from '../core/template/index.js';

export default class Slim extends AimCommand {
  static override summary = 'Compose a slim image from a gold image and a profile: only what the workload needs.';
  static override description = `The profile's traced paths seed a static closure (ELF interpreter and libraries, shebang
interpreters, symlink chains and parent directories, NSS modules, CA certificates, time zone),
the tmpfiles.d files and directories of the runtime state the workload used, and the passwd/
group/shadow files of the users it switched to. The slim image records that runtime state:
aim's init creates it at boot, before the entrypoint.
The slim image is a new manifest of exactly those entries; its report of removed files by
package and size is kept with it. --explain says why any path is kept or dropped.
"limit" is the physical limit: the bytes of the gold files the trace actually opened.
Settings come from flags, else AIM_GOLD, AIM_PROFILE, AIM_TAGS, AIM_ENTRYPOINT, else the
--template file; its keep/drop/keep-packages rules and the flags' add up.`;
  static override examples = [
    '<%= config.bin %> slim gold/nginx:1 --profile web --tag slim/nginx:1',
    '<%= config.bin %> slim gold/nginx:1 --profile web --tag slim/nginx:1 --explain /usr/lib/x86_64-linux-gnu/libssl.so.3 --explain /usr/bin/perl',
    '<%= config.bin %> slim gold/py:1 --profile app --keep "/usr/lib/python3*/**" --drop "**/__pycache__/**" --tag slim/py:1 --json',
    '<%= config.bin %> slim --template examples/redis/template.yaml --explain /usr/bin/redis-cli',
  ];
  static override args = { image: Args.string({ description: 'gold image (name:tag or id) [default: $AIM_GOLD, else the template’s gold.tag]' }) };
  static override flags = {
    template: Flags.string({ description: 'image template (YAML) giving the profile, tags, rules and entrypoint' }),
    profile: Flags.string({ description: 'profile recorded with aim profile run [default: the template’s name]' }),
    tag: Flags.string({ char: 't', description: 'name:tag for the slim image (repeatable)', multiple: true, default: [] }),
    explain: Flags.string({ description: 'say why this path is kept or dropped (repeatable)', multiple: true, default: [] }),
    'keep-package': Flags.string({ description: 'keep every file of this package (repeatable)', multiple: true, default: [] }),
    keep: Flags.string({ description: 'keep paths matching this glob (repeatable)', multiple: true, default: [] }),
    drop: Flags.string({ description: 'drop paths matching this glob unless the workload needs them (repeatable)', multiple: true, default: [] }),
    entrypoint: Flags.string({ description: 'command the slim image starts (run with /bin/sh -c) [default: the profile’s command]' }),
  };

  async run(): Promise<SlimResult> {
    const { args, flags } = await this.parse(Slim);
    const template = flags.template ? await loadTemplate(flags.template) : undefined;
    const s = resolveSettings(
      { gold: args.image, profile: flags.profile, tags: flags.tag, entrypoint: flags.entrypoint, keep: flags.keep, drop: flags.drop, keepPackages: flags['keep-package'] },
      process.env,
      template,
    );
    const gold = requireSetting(s.gold, 'gold image', 'an IMAGE argument', 'AIM_GOLD', 'gold.tag');
    const profile = requireSetting(s.profile, 'profile', '--profile', 'AIM_PROFILE', 'name');
    const repo = await this.repository(flags.repo);
    const result = await slimImage(
      repo,
      { goldId: await resolveImage(repo, gold), profile, tags: s.tags, rules: s.rules, explain: flags.explain, entrypoint: s.entrypoint },
      this.reporter(),
    );
    const r = result.report;
    this.log(
      table(
        ['', 'FILES', 'BYTES', 'ENTRIES', 'PACKAGES'],
        [
          ['gold', formatCount(r.gold.files), formatBytes(r.gold.bytes), formatCount(r.gold.entries), formatCount(r.gold.packages)],
          ['slim', formatCount(r.slim.files), formatBytes(r.slim.bytes), formatCount(r.slim.entries), formatCount(r.slim.packages)],
          ['limit', formatCount(r.limit.files), formatBytes(r.limit.bytes), '', formatCount(r.packagesTouched.length)],
        ],
      ),
    );
    this.log(
      `slim image ${shortId(result.id)} ${result.tags.join(' ')}: ${(r.gold.bytes / Math.max(1, r.slim.bytes)).toFixed(1)}x smaller than gold, ` +
        `${(r.slim.bytes / Math.max(1, r.limit.bytes)).toFixed(2)}x the traced limit`,
    );
    this.log(`packages the trace touched: ${r.packagesTouched.join(', ') || '(none)'}`);
    this.log(`removed most from: ${r.removedByPackage.slice(0, 6).map((p) => `${p.package} ${formatBytes(p.bytes)}`).join(', ')}`);
    if (r.entrypoint) this.log(`entrypoint: ${JSON.stringify(r.entrypoint)}`);
    if (r.runtime && r.runtime.actions.length > 0) {
      const from = [...r.runtime.units, ...r.runtime.tmpfiles];
      this.log(`runtime state made at start: ${r.runtime.actions.length} action(s) from ${from.join(', ')}`);
    }
    for (const e of result.explanations) {
      const status = e.kept ? 'kept' : e.created ? 'made at start' : e.dropBy ? `dropped (${e.dropBy})` : 'not kept';
      this.log(`\n${e.path}: ${status}${e.packages?.length ? ` [${e.packages.join(', ')}]` : ''}`);
      for (const why of e.reasons) this.log(`  - ${why}`);
    }
    return result;
  }
}
