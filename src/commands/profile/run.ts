import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { shortId } from '../../cli/format.js';
import { runProfile, type ProfileRunResult } from '../../core/profile/profile-run.js';
import { resolveImage } from '../../core/query/resolve.js';
import { loadTemplate, requireSetting, resolveSettings } from '../../core/template/index.js';

export default class ProfileRun extends AimCommand {
  static override summary = 'Run a workload inside an image under strace and record every path it uses.';
  static override description = `The image is materialised in the repository's scratch space and run isolated (mount, pid, uts,
net and ipc namespaces, chroot, minimal /proc /sys /dev, loopback up). Probes run once --ready-port
listens. Runs with the same --name merge into one profile. Needs root.
Before the workload starts, the runtime state a booted system would have is created: the image's
tmpfiles.d lines, and the RuntimeDirectory=, StateDirectory=, LogsDirectory=, CacheDirectory= of
the workload's systemd unit (--unit, else the units whose ExecStart= runs a program of --run).
Settings come from flags, else AIM_* variables (AIM_GOLD, AIM_PROFILE, AIM_RUN, AIM_READY_PORT,
AIM_DURATION, AIM_PROBE_TIMEOUT, AIM_UNIT), else the --template file, else defaults.`;
  static override examples = [
    `<%= config.bin %> profile run gold/nginx:1 --run "nginx -g 'daemon off;'" --ready-port 80 --probe http://127.0.0.1:80/ --name web`,
    '<%= config.bin %> profile run gold/redis:1 --run "redis-server --protected-mode no" --ready-port 6379 --probe-exec "redis-cli PING" --name cache --duration 10s --json',
    '<%= config.bin %> profile run --template examples/redis/template.yaml',
  ];
  static override args = { image: Args.string({ description: 'image (name:tag or id) [default: $AIM_GOLD, else the template’s gold.tag]' }) };
  static override flags = {
    template: Flags.string({ description: 'image template (YAML) giving the workload, probes and names' }),
    run: Flags.string({ description: 'workload command, run with the image’s /bin/sh -c' }),
    name: Flags.string({ description: 'profile name (runs with the same name merge) [default: the template’s name]' }),
    probe: Flags.string({ description: 'HTTP URL to GET once ready (repeatable)', multiple: true, default: [] }),
    'probe-exec': Flags.string({ description: 'command to run inside the image once ready (repeatable)', multiple: true, default: [] }),
    'ready-port': Flags.integer({ description: 'TCP port that means the workload is ready', min: 1, max: 65535 }),
    duration: Flags.string({ description: 'how long the workload runs before it is stopped [default: 20s]' }),
    'probe-timeout': Flags.string({ description: 'how long one probe may take [default: 10s]' }),
    unit: Flags.string({ description: 'systemd unit whose runtime directories to create first (repeatable) [default: found from --run]', multiple: true, default: [] }),
  };

  async run(): Promise<ProfileRunResult> {
    const { args, flags } = await this.parse(ProfileRun);
    const template = flags.template ? await loadTemplate(flags.template) : undefined;
    const s = resolveSettings(
      {
        gold: args.image,
        profile: flags.name,
        run: flags.run,
        readyPort: flags['ready-port'],
        duration: flags.duration,
        probeTimeout: flags['probe-timeout'],
        probes: [...flags.probe.map((url) => ({ kind: 'http' as const, url })), ...flags['probe-exec'].map((command) => ({ kind: 'exec' as const, command }))],
        units: flags.unit,
      },
      process.env,
      template,
    );
    const image = requireSetting(s.gold, 'image to profile', 'an IMAGE argument', 'AIM_GOLD', 'gold.tag');
    const name = requireSetting(s.profile, 'profile name', '--name', 'AIM_PROFILE', 'name');
    const command = requireSetting(s.run, 'workload command', '--run', 'AIM_RUN', 'profile.run');
    const repo = await this.repository(flags.repo);
    const imageId = await resolveImage(repo, image);
    const result = await runProfile(
      repo,
      { imageId, name, run: command, probes: s.probes, readyPort: s.readyPort, durationMs: s.durationMs, probeTimeoutMs: s.probeTimeoutMs, units: s.units },
      this.reporter(),
    );
    for (const p of result.run.probes) {
      this.log(p.kind === 'http' ? `probe ${p.url}: HTTP ${p.status}, ${p.bytes} bytes` : `probe-exec ${p.command}: exit ${p.exitCode}`);
    }
    const rt = result.run.runtime;
    if (rt.actions > 0) {
      const units = rt.units.length === 0 ? 'no unit' : `${rt.units.join(', ')}${rt.detected ? ' (found from the command)' : ''}`;
      this.log(`runtime state: ${rt.actions} action(s) from ${units} and ${rt.tmpfiles.length} tmpfiles.d file(s)`);
    }
    this.log(`profile ${result.profile.name} (image ${shortId(imageId)}): ${result.run.paths} paths this run, ${result.profile.paths.length} in ${result.profile.runs.length} run(s)`);
    return result;
  }
}
