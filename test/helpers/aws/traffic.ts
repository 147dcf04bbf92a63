import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Requests and bytes of one action, as a server saw them. */
export interface ActionTraffic {
  requests: number;
  /** Request body bytes (for PutSnapshotBlock: the block data sent). */
  bodyBytes: number;
  /** Requests answered with an error (4xx/5xx) or dropped. */
  failed: number;
}

/** What a server received: per action, and on the wire (headers and bodies, in and out). */
export interface TrafficReport {
  actions: Record<string, ActionTraffic>;
  requests: number;
  bodyBytes: number;
  wire: { bytesIn: number; bytesOut: number; connections: number };
}

/** Counts requests and bytes per action, and every byte of every connection of a server. */
export class Traffic {
  private actions = new Map<string, ActionTraffic>();
  private readonly open = new Set<Socket>();
  private closedIn = 0;
  private closedOut = 0;
  private base = { bytesIn: 0, bytesOut: 0, connections: 0 };
  private connections = 0;

  watch(server: Server): void {
    server.on('connection', (socket: Socket) => {
      this.connections++;
      this.open.add(socket);
      socket.once('close', () => {
        this.open.delete(socket);
        this.closedIn += socket.bytesRead;
        this.closedOut += socket.bytesWritten;
      });
    });
  }

  count(action: string, bodyBytes: number, failed: boolean): void {
    const a = this.actions.get(action) ?? { requests: 0, bodyBytes: 0, failed: 0 };
    a.requests++;
    a.bodyBytes += bodyBytes;
    if (failed) a.failed++;
    this.actions.set(action, a);
  }

  private wireNow() {
    let bytesIn = this.closedIn;
    let bytesOut = this.closedOut;
    for (const s of this.open) {
      bytesIn += s.bytesRead;
      bytesOut += s.bytesWritten;
    }
    return { bytesIn, bytesOut, connections: this.connections };
  }

  report(): TrafficReport {
    const actions = Object.fromEntries([...this.actions].map(([k, v]) => [k, { ...v }]));
    const all = [...this.actions.values()];
    const wire = this.wireNow();
    return {
      actions,
      requests: all.reduce((n, a) => n + a.requests, 0),
      bodyBytes: all.reduce((n, a) => n + a.bodyBytes, 0),
      wire: { bytesIn: wire.bytesIn - this.base.bytesIn, bytesOut: wire.bytesOut - this.base.bytesOut, connections: wire.connections - this.base.connections },
    };
  }

  /** Starts counting from zero (e.g. between the phases of a benchmark). */
  reset(): void {
    this.actions = new Map();
    this.base = this.wireNow();
  }
}
