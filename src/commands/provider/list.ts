import { AimCommand } from '../../cli/base-command.js';
import { table } from '../../cli/format.js';
import { allProviders } from '../../cli/plugin-providers.js';
import type { ProviderOption } from '../../core/ship/provider.js';
import { findProvider } from '../../core/ship/registry.js';

interface ProviderListResult {
  providers: { name: string; source: string; summary: string; options: ProviderOption[] }[];
}

export default class ProviderList extends AimCommand {
  static override summary = 'List the providers `aim ship` can publish through: built-in ones and those of installed plugins.';
  static override description = `Third-party providers are oclif plugins whose package.json declares an "aim:providers" hook;
install one with \`aim plugins install <package>\` or \`aim plugins link <dir>\`.`;
  static override examples = ['<%= config.bin %> provider list', '<%= config.bin %> provider list --json'];

  async run(): Promise<ProviderListResult> {
    await this.parse(ProviderList);
    const entries = await allProviders(this.config, this.reporter());
    const providers = [];
    for (const entry of entries) {
      const { provider } = await findProvider(entry.name, entries);
      providers.push({ name: provider.name, source: entry.source, summary: provider.summary, options: provider.options });
    }
    this.log(table(['PROVIDER', 'FROM', 'OPTIONS', 'SUMMARY'], providers.map((p) => [p.name, p.source, p.options.map((o) => `--${o.name}`).join(' '), p.summary])));
    return { providers };
  }
}
