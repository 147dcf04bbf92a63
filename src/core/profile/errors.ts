import { AimError, ExitCode, type AimErrorOptions } from '../../lib/errors.js';

export type ProfileErrorCode =
  /** The sandbox itself did not come up (mounts, namespaces, strace). */
  | 'E_PROFILE_SETUP'
  /** The workload's command does not exist in the image (exit 127). */
  | 'E_PROFILE_NOT_FOUND'
  /** The workload ended before it was ready or before the probes were done, or failed. */
  | 'E_PROFILE_EXITED'
  /** The ready port never accepted connections. */
  | 'E_PROFILE_NOT_READY'
  /** A probe could not be performed (refused, reset, timed out). */
  | 'E_PROFILE_PROBE'
  /** The trace does not show the end of every process it traced: strace stopped early. */
  | 'E_PROFILE_TRACE';

const HINTS: Record<ProfileErrorCode, string> = {
  E_PROFILE_SETUP: 'check that the root directory holds an image and that namespaces and ptrace are allowed here',
  E_PROFILE_NOT_FOUND: 'check --run: the command must exist inside the image (paths are the image\'s, not the host\'s)',
  E_PROFILE_EXITED: 'the workload must keep running until aim stops it: run it in the foreground (no daemonising wrapper that fails)',
  E_PROFILE_NOT_READY: 'check --ready-port and that the service listens inside the image; raise the ready timeout for slow starts',
  E_PROFILE_PROBE: 'check the probe URL or command and that the service answers within the probe timeout',
  E_PROFILE_TRACE: 'run the profile again; a workload that kills every process it can (kill -9 -1) kills strace too. AIM_KEEP_TRACE=DIR keeps the raw trace',
};

/** A profiling run failed; carries the tail of the workload's output. */
export class ProfileError extends AimError {
  readonly outputTail: string;
  constructor(code: ProfileErrorCode, message: string, outputTail: string, options: AimErrorOptions = {}) {
    const tail = outputTail.trimEnd();
    super(code, tail ? `${message}\n--- last output of the workload ---\n${tail}` : `${message} (no output)`, ExitCode.toolFailed, {
      hint: options.hint ?? HINTS[code],
      cause: options.cause,
    });
    this.outputTail = tail;
  }
}
