import type { ServerResponse } from 'node:http';
import type { DashboardMonitor, MonitorEvent } from './dashboard-monitor.ts';

/** Options of {@link LiveUpdates}. */
export interface LiveUpdatesOptions {
  /** A comment line this often keeps proxies from closing an idle stream (ms). Default 15 s. */
  heartbeatMs?: number;
}

/**
 * `GET /admin/live`: server-sent events to every connected page — `overview` each round, `point`
 * each chart step, `activity` for each operator action — from the monitor's one collection loop,
 * plus a comment line as heartbeat. Streams end cleanly when the dashboard shuts down.
 */
export class LiveUpdates {
  private readonly streams = new Set<ServerResponse>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly monitor: DashboardMonitor,
    options: LiveUpdatesOptions = {},
  ) {
    this.unsubscribe = monitor.subscribe((event) => this.broadcast(event));
    this.heartbeat = setInterval(() => {
      for (const stream of this.streams) stream.write(': heartbeat\n\n');
    }, options.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  /** Pages connected now. */
  get connected(): number {
    return this.streams.size;
  }

  /**
   * Turns `response` (a hijacked reply) into an event stream: headers, the current overview at once,
   * then every event until the client leaves or {@link close}.
   */
  async attach(response: ServerResponse, headers: Record<string, string> = {}): Promise<void> {
    response.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    // Tells the client how long to wait before reconnecting.
    response.write('retry: 2000\n\n');
    this.streams.add(response);
    response.once('close', () => this.streams.delete(response));
    const overview = await this.monitor.overview();
    if (this.streams.has(response)) response.write(format({ event: 'overview', data: overview }));
  }

  /** Ends every stream (shutdown): clients see the stream end, not a broken connection. */
  close(): void {
    this.unsubscribe();
    clearInterval(this.heartbeat);
    for (const stream of this.streams) stream.end();
    this.streams.clear();
  }

  private broadcast(event: MonitorEvent): void {
    if (this.streams.size === 0) return;
    const text = format(event);
    for (const stream of this.streams) stream.write(text);
  }
}

function format(event: MonitorEvent): string {
  return `event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`;
}
