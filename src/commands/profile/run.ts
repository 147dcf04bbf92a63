import { Args, Flags } from '@oclif/core';
import { AimCommand } from '../../cli/base-command.js';
import { shortId } from '../../cli/format.js';
import { runProfile, type ProfileRunResult } from '../../core/profile/profile-run.js';
import { execProbe, httpProbe } from '../../core/profile/probes.js';
import { resolveImage } from '../../core/query/resolve.js';
import { loadTemplate, requireSetting, resolveSettings } from '../../core/template/index.js';

export default class ProfileRun extends AimCommand {
  static override summary = 'Run a workload inside an image under strace and record every path it uses.';
  static override description = `The image is materialised in the repository's scratch space and run isolated (mount, pid, uts,
net and ipc namespaces, chroot, minimal /proc /sys /dev, loopback up). Readiness: aim waits for the
--ready-log line and the --ready-port (each when given), then tries every probe until it meets
its expectation (HTTP: any 2xx, or --expect-status; exec: exit 0), with a short backoff, within
--ready-timeout of the workload's start; an HTTP probe waits for its own port. A probe that
never meets its expectation fails the run (E_PROBE_FAILED) and no profile is stored.
Runs with the same --name merge into one profile. Needs root.
Before the workload starts, the runtime state a booted system would have is created: the image's
tmpfiles.d lines, and the RuntimeDirectory=, StateDirectory=, LogsDirectory=, CacheDirectory= of
the workload's systemd unit (--unit, else the units whose ExecStart= runs a program of --run).
Settings come from flags, else AIM_* variables (AIM_GOLD, AIM_PROFILE, AIM_RUN, AIM_READY_PORT,
AIM_READY_LOG, AIM_READY_TIMEOUT, AIM_DURATION, AIM_PROBE_TIMEOUT, AIM_UNIT), else the --template file
(whose probes can carry status, bodyContains, exitCode, outputContains), else defaults.`;
  static override examples = [
    `<%= config.bin %> profile run gold/nginx:1 --run "nginx -g 'daemon off;'" --probe http://127.0.0.1:80/ --name web`,
    `<%= config.bin %> profile run gold/nginx:1 --run "nginx -g 'daemon off;'" --probe http://127.0.0.1:80/missing --expect-status 404 --name web`,
    '<%= config.bin %> profile run gold/redis:1 --run "redis-server --protected-mode no" --ready-log "Ready to accept connections" --probe-exec "redis-cli PING" --name cache --duration 10s --json',
    '<%= config.bin %> profile run --template examples/redis/template.yaml',
  ];
  static override args = { image: Args.string({ description: 'image (name:tag or id) [default: $AIM_GOLD, else the template’s gold.tag]' }) };
  static override flags = {
    template: Flags.string({ description: 'image template (YAML) giving the workload, probes and names' }),
    run: Flags.string({ description: 'workload command, run with the image’s /bin/sh -c' }),
    name: Flags.string({ description: 'profile name (runs with the same name merge) [default: the template’s name]' }),
    probe: Flags.string({ description: 'HTTP URL to GET, tried until it answers 2xx (repeatable)', multiple: true, default: [] }),
    'expect-status': Flags.integer({ description: 'the status every --probe URL must answer with instead of 2xx', min: 100, max: 599 }),
    'expect-body': Flags.string({ description: 'text every --probe URL\'s body must contain' }),
    'probe-exec': Flags.string({ description: 'command to run inside the image, tried until it exits 0 (repeatable)', multiple: true, default: [] }),
    'ready-port': Flags.integer({ description: 'TCP port awaited before the probes (optional: an HTTP probe waits for its own port)', min: 1, max: 65535 }),
    'ready-log': Flags.string({ description: 'regular expression: a line of the workload\'s output awaited before the probes' }),
    'ready-timeout': Flags.string({ description: 'how long after its start the workload may take to be ready and meet every probe [default: 60s]' }),
    duration: Flags.string({ description: 'how long the workload runs before it is stopped [default: 20s]' }),
    'probe-timeout': Flags.string({ description: 'how long one probe try may take [default: 10s]' }),
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
        readyLog: flags['ready-log'],
        readyTimeout: flags['ready-timeout'],
        duration: flags.duration,
        probeTimeout: flags['probe-timeout'],
        probes: [...flags.probe.map((url) => httpProbe(url, { status: flags['expect-status'], bodyContains: flags['expect-body'] })), ...flags['probe-exec'].map((command) => execProbe(command))],
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
      { imageId, name, run: command, probes: s.probes, readyPort: s.readyPort, readyLog: s.readyLog, readyTimeoutMs: s.readyTimeoutMs, durationMs: s.durationMs, probeTimeoutMs: s.probeTimeoutMs, units: s.units },
      this.reporter(),
    );
    for (const p of result.run.probes) {
      const answer = p.kind === 'http' ? `probe ${p.url}: HTTP ${p.status}, ${p.bytes} bytes` : `probe-exec ${p.command}: exit ${p.exitCode}`;
      this.log(`${answer} (met after ${p.tries} ${p.tries === 1 ? 'try' : 'tries'}, ${p.readyMs} ms after the start)`);
    }
    const rt = result.run.runtime;
    if (rt.actions > 0) {
      const units = rt.units.length === 0 ? 'no unit' : `${rt.units.join(', ')}${rt.detected ? ' (found from the command)' : ''}`;
      this.log(`runtime state: ${rt.actions} action(s) from ${units} and ${rt.tmpfiles.length} tmpfiles.d file(s)`);
    }
    const ready = result.run.ready;
    if (ready) this.log(`ready after ${ready.ms} ms${ready.line === undefined ? '' : ` (log: ${ready.line})`}`);
    this.log(`profile ${result.profile.name} (image ${shortId(imageId)}): ${result.run.paths} paths this run, ${result.profile.paths.length} in ${result.profile.runs.length} run(s)`);
    return result;
  }
}
