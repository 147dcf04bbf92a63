import { AimCommand } from '../../cli/base-command.js';
import { assignmentsTable } from '../../cli/pxe-output.js';
import { listAssignments, type AssignmentView } from '../../core/pxe/assignments.js';

export default class PxeList extends AimCommand {
  static override summary = 'List PXE assignments: which machines boot which image, with what kernel and arguments.';
  static override description = 'MISSING marks an assignment whose image was removed from the repository: its machines are told so when they boot.';
  static override examples = ['<%= config.bin %> pxe list', '<%= config.bin %> pxe list --json'];

  async run(): Promise<{ assignments: AssignmentView[] }> {
    const { flags } = await this.parse(PxeList);
    const assignments = await listAssignments(await this.repository(flags.repo));
    this.log(assignmentsTable(assignments));
    return { assignments };
  }
}
