import { Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { shortId, table } from '../../cli/format.js';
import { listPublications } from '../../core/ship/publications.js';
import type { PublicationView } from '../../core/ship/publication-run.js';

const STATES = ['applying', 'published', 'interrupted', 'failed', 'removing', 'removed'];

export default class ShipList extends AimCommand {
  static override summary = 'List publications: what aim shipped, their state and the resources each one created.';
  static override description = `A publication is one image shipped through one provider to one target. Its journal lists every
resource it created (uploaded files, snapshots, AMIs, builds) with its state: pending (being
created, or cut short), created, removed. An interrupted publication is finished by
\`aim ship resume\` or removed by \`aim ship rm\`. Removed publications are shown with --all.`;
  static override examples = ['<%= config.bin %> ship list', '<%= config.bin %> ship list --state interrupted', '<%= config.bin %> ship list --provider vmware --all --json'];
  static override flags = {
    provider: Flags.string({ description: 'only this provider’s publications' }),
    state: Flags.string({ description: 'only publications in this state', options: STATES }),
    all: Flags.boolean({ description: 'include removed publications' }),
  };

  async run(): Promise<{ publications: PublicationView[] }> {
    const { flags } = await this.parse(ShipList);
    const publications = await listPublications(await this.repository(flags.repo), { provider: flags.provider, state: flags.state, all: flags.all });
    const rows = publications.map((p) => {
      const live = p.resources.filter((r) => r.state !== 'removed');
      const counts = ['pending', 'created'].map((s) => [s, live.filter((r) => r.state === s).length] as const).filter(([, n]) => n > 0);
      return [p.id, p.provider, `${p.imageRef} (${shortId(p.imageId)})`, p.state, counts.map(([s, n]) => `${n} ${s}`).join(', ') || '-', p.target];
    });
    this.log(rows.length > 0 ? table(['PUBLICATION', 'PROVIDER', 'IMAGE', 'STATE', 'RESOURCES', 'TARGET'], rows) : 'no publications');
    return { publications };
  }
}
