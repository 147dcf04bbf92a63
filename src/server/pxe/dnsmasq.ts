import { rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { AimError, ExitCode, ToolFailedError, errnoCode } from '../../lib/errors.js';
import { spawnTool } from '../../lib/exec.js';
import { renderDnsmasqConfig, type DnsmasqSettings } from './dnsmasq-config.js';
import { stamp, type ServeEventSink } from './events.js';

/** How long dnsmasq may take to bind its sockets and read its files. */
const START_TIMEOUT_MS = 15_000;

export interface DnsmasqChild {
  pid: number;
  /** Rewrites the hosts file and tells dnsmasq to reread it (SIGHUP). */
  reload(hostsText: string): Promise<void>;
  /** Resolves when dnsmasq exits, for whatever reason. */
  exited: Promise<{ exitCode?: number; signal?: string }>;
  /** SIGTERM, then SIGKILL after 3 s; waits for the exit. */
  stop(): Promise<void>;
}

/** A transfer dnsmasq's TFTP server reported. */
export interface TftpTransfer {
  file: string;
  address: string;
  complete: boolean;
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text, { mode: 0o644 });
  await rename(`${path}.new`, path);
}

/**
 * Starts dnsmasq as a child of this process: in the foreground (`--keep-in-foreground`), logging
 * to its stderr, which becomes events. It is stopped with the server and killed if this process
 * exits any other way (an exit handler); only a SIGKILL of aim itself leaves it running. Resolves
 * once dnsmasq has bound its sockets and read its files, or fails with its own message.
 */
export async function startDnsmasq(settings: DnsmasqSettings, confFile: string, hostsText: string, emit: ServeEventSink, onTftp: (t: TftpTransfer) => void): Promise<DnsmasqChild> {
  await writeAtomically(settings.hostsFile, hostsText);
  await writeFile(confFile, renderDnsmasqConfig(settings), { mode: 0o644 });
  const { child } = await spawnTool('dnsmasq', ['--keep-in-foreground', `--conf-file=${confFile}`, '--log-facility=-'], { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  const pid = child.pid;
  const killNow = () => {
    try {
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  process.once('exit', killNow);
  const tail: string[] = [];
  let ready = false;
  let markReady: () => void = () => {};
  const readyLine = new Promise<void>((resolve) => (markReady = resolve));
  const macs = new Map<string, string>();
  const lines = createInterface({ input: child.stderr! });
  lines.on('line', (line) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
    parseLogLine(line, { emit, onTftp, macs });
    // the last lines dnsmasq writes when it starts: the hosts file read (DHCP), or the TFTP root
    if (!ready && (line.includes(`read ${settings.hostsFile}`) || (!settings.dhcp && line.includes('TFTP root is')))) {
      ready = true;
      markReady();
    }
  });
  const exited = (async () => {
    const r = await child;
    process.off('exit', killNow);
    return { ...(r.exitCode === undefined ? {} : { exitCode: r.exitCode }), ...(r.signal === undefined ? {} : { signal: r.signal }) };
  })();
  const failed = () => new ToolFailedError(['dnsmasq', `--conf-file=${confFile}`], undefined, tail.join('\n') || 'it exited', { hint: 'another DHCP or TFTP server on this machine may hold the ports (67, 69, 4011): stop it, or give another --interface' });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    readyLine.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), START_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    killNow();
    await exited;
    if (outcome === 'timeout') throw new AimError('E_DNSMASQ_START', `dnsmasq did not start within ${START_TIMEOUT_MS / 1000} s: ${tail.join(' | ')}`, ExitCode.toolFailed);
    throw failed();
  }
  emit(stamp({ event: 'dnsmasq', message: 'started', pid: pid! }));
  return {
    pid: pid!,
    exited,
    async reload(text) {
      await writeAtomically(settings.hostsFile, text);
      try {
        process.kill(pid!, 'SIGHUP');
      } catch (e) {
        if (errnoCode(e) !== 'ESRCH') throw e;
      }
    },
    async stop() {
      try {
        process.kill(pid!, 'SIGTERM');
      } catch (e) {
        if (errnoCode(e) !== 'ESRCH') throw e;
      }
      const t = setTimeout(killNow, 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

interface ParseState {
  emit: ServeEventSink;
  onTftp: (t: TftpTransfer) => void;
  /** xid → MAC, to name the machine in the lines that follow. */
  macs: Map<string, string>;
}

/**
 * One line of dnsmasq's log → an event. The lines that matter become structured (a PXE answer
 * and its MAC, the boot file given, a TFTP transfer); option dumps are left out; anything else is
 * passed on as it is.
 */
export function parseLogLine(line: string, s: ParseState): void {
  const m = /^dnsmasq(?:-(dhcp|tftp))?\[\d+\]: (.*)$/.exec(line) ?? /^dnsmasq(?:-(dhcp|tftp))?: (.*)$/.exec(line);
  if (!m) return s.emit(stamp({ event: 'dnsmasq', message: line }));
  const [, facility, text] = m as unknown as [string, string | undefined, string];
  if (facility === 'tftp') {
    const sent = /^sent (\S+) to (\S+)$/.exec(text);
    const failed = /^(?:failed sending|error \d+ .* received from) .*?(\S+)$/.exec(text);
    if (sent) {
      s.onTftp({ file: basename(sent[1]!), address: sent[2]!, complete: true });
      return s.emit(stamp({ event: 'tftp', message: text, file: basename(sent[1]!), address: sent[2]!, complete: true }));
    }
    if (failed) return s.emit(stamp({ event: 'tftp', message: text, address: failed[1]!, complete: false }));
    return s.emit(stamp({ event: 'tftp', message: text }));
  }
  if (facility === 'dhcp') {
    const x = /^(\d+) (.*)$/.exec(text);
    if (!x) return s.emit(stamp({ event: 'dhcp', message: text }));
    const [, xid, rest] = x as unknown as [string, string, string];
    // option dumps and other detail: only with DEBUG-level interest, not as events
    if (/^(sent size:|requested options:|available DHCP|tags:|broadcast response|next server:|server name:|vendor class:|user class:|client provides name:|DHCP packet received)/.test(rest)) return;
    const pxe = /^(?:PXE|DHCP[A-Z]+)\((\S+)\) (?:(\d+\.\d+\.\d+\.\d+) )?([0-9a-f]{2}(?::[0-9a-f]{2}){5})/.exec(rest);
    if (pxe) {
      s.macs.set(xid, pxe[3]!);
      if (s.macs.size > 256) s.macs.delete(s.macs.keys().next().value!);
      return s.emit(stamp({ event: 'dhcp', message: rest, mac: pxe[3]!, xid }));
    }
    const boot = /^bootfile name: (.*)$/.exec(rest);
    const mac = s.macs.get(xid);
    if (boot) return s.emit(stamp({ event: 'dhcp', message: rest, bootfile: boot[1]!, xid, ...(mac ? { mac } : {}) }));
    return s.emit(stamp({ event: 'dhcp', message: rest, xid, ...(mac ? { mac } : {}) }));
  }
  s.emit(stamp({ event: 'dnsmasq', message: text }));
}

/** Where the serve's run directory keeps dnsmasq's files. */
export function dnsmasqFiles(runDir: string): Pick<DnsmasqSettings, 'tftpRoot' | 'hostsFile' | 'leaseFile' | 'pidFile'> & { confFile: string } {
  return { tftpRoot: join(runDir, 'tftp'), hostsFile: join(runDir, 'hosts'), leaseFile: join(runDir, 'leases'), pidFile: join(runDir, 'dnsmasq.pid'), confFile: join(runDir, 'dnsmasq.conf') };
}
