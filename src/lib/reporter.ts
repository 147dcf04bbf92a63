/**
 * Core code never writes to the console. It emits events to a Reporter that the command chose:
 * progress lines on a terminal, nothing with --json, a recording array in tests.
 */
export type AimEvent =
  | { type: 'stage'; stage: string; status: 'start' | 'done'; detail?: string }
  | { type: 'progress'; stage: string; done: number; total?: number; unit: 'bytes' | 'entries' | 'blobs' | 'files' | 'blocks' | 'images' }
  | { type: 'warn'; code: string; message: string; path?: string }
  | { type: 'info'; message: string };

export interface Reporter {
  emit(event: AimEvent): void;
}

export const silentReporter: Reporter = { emit() {} };

/** Collects events; used by tests and by commands that summarise warnings at the end. */
export class RecordingReporter implements Reporter {
  readonly events: AimEvent[] = [];
  constructor(private readonly next: Reporter = silentReporter) {}
  emit(event: AimEvent): void {
    this.events.push(event);
    this.next.emit(event);
  }
  warnings(): Extract<AimEvent, { type: 'warn' }>[] {
    return this.events.filter((e): e is Extract<AimEvent, { type: 'warn' }> => e.type === 'warn');
  }
}
