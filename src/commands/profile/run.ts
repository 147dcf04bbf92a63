import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { shortId } from '../../cli/format.js';
import { parseDuration, runProfile, type ProfileRunResult } from '../../core/profile/profile-run.js';
import { resolveImage } from '../../core/query/resolve.js';

export default class ProfileRun extends AimCommand {
  static override summary = 'Run a workload inside an image under strace and record every path it uses.';
  static override description = `The image is materialised in the repository's scratch space and run isolated (mount, pid, uts,
net and ipc namespaces, chroot, minimal /proc /sys /dev, loopback up). Probes run once --ready-port
listens. Runs with the same --name merge into one profile. Needs root.`;
  static override examples = [
    `<%= config.bin %> profile run gold/nginx:1 --run "nginx -g 'daemon off;'" --ready-port 80 --probe http://127.0.0.1:80/ --name web`,
    '<%= config.bin %> profile run gold/redis:1 --run "redis-server --protected-mode no" --ready-port 6379 --probe-exec "redis-cli PING" --name cache --duration 10s --json',
  ];
  static override args = { image: Args.string({ description: 'image (name:tag or id)', required: true }) };
  static override flags = {
    run: Flags.string({ description: 'workload command, run with the image’s /bin/sh -c', required: true }),
    name: Flags.string({ description: 'profile name (runs with the same name merge)', required: true }),
    probe: Flags.string({ description: 'HTTP URL to GET once ready (repeatable)', multiple: true, default: [] }),
    'probe-exec': Flags.string({ description: 'command to run inside the image once ready (repeatable)', multiple: true, default: [] }),
    'ready-port': Flags.integer({ description: 'TCP port that means the workload is ready', min: 1, max: 65535 }),
    duration: Flags.string({ description: 'how long the workload runs before it is stopped', default: '20s' }),
  };

  async run(): Promise<ProfileRunResult> {
    const { args, flags } = await this.parse(ProfileRun);
    const repo = await this.repository(flags.repo);
    const imageId = await resolveImage(repo, args.image);
    const result = await runProfile(
      repo,
      {
        imageId,
        name: flags.name,
        run: flags.run,
        probes: [...flags.probe.map((url) => ({ kind: 'http' as const, url })), ...flags['probe-exec'].map((command) => ({ kind: 'exec' as const, command }))],
        readyPort: flags['ready-port'],
        durationMs: parseDuration(flags.duration),
      },
      this.reporter(),
    );
    for (const p of result.run.probes) {
      this.log(p.kind === 'http' ? `probe ${p.url}: HTTP ${p.status}, ${p.bytes} bytes` : `probe-exec ${p.command}: exit ${p.exitCode}`);
    }
    this.log(`profile ${result.profile.name} (image ${shortId(imageId)}): ${result.run.paths} paths this run, ${result.profile.paths.length} in ${result.profile.runs.length} run(s)`);
    return result;
  }
}
