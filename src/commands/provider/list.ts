import { z } from 'zod';
import { AimCommand } from '../../cli/base-command.js';
import { table } from '../../cli/format.js';
import { allProviders } from '../../cli/plugin-providers.js';
import { optionSpecs, type OptionSpec } from '../../core/ship/options.js';
import { findProvider } from '../../core/ship/registry.js';

interface ProviderListResult {
  providers: { name: string; source: string; summary: string; options: OptionSpec[]; schema: unknown }[];
}

export default class ProviderList extends AimCommand {
  static override summary = 'List the providers `aim ship` can publish through: built-in ones and those of installed plugins.';
  static override description = `Each provider's options come from its zod schema: --json gives them as a list and as a JSON Schema
(the values a template's ship.<provider> section may hold). Third-party providers are oclif plugins whose
package.json declares an "aim:providers" hook; install one with \`aim plugins install <package>\` or
\`aim plugins link <dir>\`.`;
  static override examples = ['<%= config.bin %> provider list', '<%= config.bin %> provider list --json'];

  async run(): Promise<ProviderListResult> {
    await this.parse(ProviderList);
    const entries = await allProviders(this.config, this.reporter());
    const providers = [];
    for (const entry of entries) {
      const { provider } = await findProvider(entry.name, entries);
      const schema = z.toJSONSchema(provider.options, { io: 'input', unrepresentable: 'any' });
      providers.push({ name: provider.name, source: entry.source, summary: provider.summary, options: optionSpecs(provider.options), schema });
    }
    this.log(table(['PROVIDER', 'FROM', 'OPTIONS', 'SUMMARY'], providers.map((p) => [p.name, p.source, p.options.map((o) => `--${o.name}`).join(' '), p.summary])));
    return { providers };
  }
}
