import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@civildiy/common/testing';
import type { ServiceInfo } from '@civildiy/common/topology';
import type { ServiceStatus } from '../src/contract.ts';
import { startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

const WAIT = { timeout: 15_000, interval: 50 };

/** A small HTTP service answering as ours do: `/health/live`, `/health/ready` (a database check), `/metrics`. */
class ProbeTarget {
  ready = true;
  private server: Server | undefined;
  private startTime = 0;

  constructor(readonly port: number) {}

  async start(startTime: number): Promise<void> {
    this.startTime = startTime;
    this.server = createServer((request, response) => {
      if (request.url === '/health/live') return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      if (request.url === '/health/ready') {
        const checks = { redis: { status: 'up', ms: 1 }, database: this.ready ? { status: 'up', ms: 1 } : { status: 'down', error: 'connect ECONNREFUSED 127.0.0.1:5432', ms: 2 } };
        return void response
          .writeHead(this.ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: this.ready ? 'ready' : 'not_ready', checks }));
      }
      if (request.url === '/metrics') {
        return void response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(
          [
            '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.',
            '# TYPE process_start_time_seconds gauge',
            `process_start_time_seconds{service="probe-target"} ${this.startTime}`,
            '# TYPE process_resident_memory_bytes gauge',
            'process_resident_memory_bytes{service="probe-target"} 52428800',
            '# TYPE nodejs_heap_size_used_bytes gauge',
            'nodejs_heap_size_used_bytes{service="probe-target"} 10485760',
            '',
          ].join('\n'),
        );
      }
      response.writeHead(404).end();
    });
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

let target: ProbeTarget;
let dashboard: DashboardUnderTest;
let services: ServiceInfo[];
let urls: Record<string, string>;
const startedAt = Math.floor(Date.now() / 1000) - 3_600;

beforeAll(async () => {
  target = new ProbeTarget(await freePort());
  await target.start(startedAt);
  const silentPort = await freePort();
  services = [
    { name: 'probe-target', portVariable: 'PROBE_TARGET_PORT', ports: [target.port], role: 'a test service', docs: false },
    { name: 'never-started', portVariable: 'NEVER_STARTED_PORT', ports: [silentPort], role: 'a service that is not running', docs: false },
  ];
  urls = { 'probe-target': `http://127.0.0.1:${target.port}`, 'never-started': `http://127.0.0.1:${silentPort}` };
  dashboard = await startDashboard({ services, urls });
  dashboard.monitor.start();
});

afterAll(async () => {
  await dashboard?.close();
  await target?.stop();
});

async function status(name: string, on = dashboard): Promise<ServiceStatus> {
  const { body } = await on.call('GET', '/admin/overview', { token: on.operatorToken });
  return (body.services as ServiceStatus[]).find((service) => service.name === name)!;
}

describe('the services panel', () => {
  it('shows a live and ready service green with its uptime and memory, and one not running red with the reason', async () => {
    await expect.poll(async () => (await status('probe-target')).light, WAIT).toBe('green');
    const up = await status('probe-target');
    expect(up).toMatchObject({ url: urls['probe-target'], live: true, ready: true, failingChecks: [], error: null, residentMemoryBytes: 52428800, heapUsedBytes: 10485760, restarts: 0 });
    expect(up.uptimeSeconds).toBeGreaterThanOrEqual(3_600);
    const down = await status('never-started');
    expect(down).toMatchObject({ light: 'red', live: false, ready: false, uptimeSeconds: null });
    expect(down.error).toMatch(/ECONNREFUSED/);
  });

  it('turns amber naming the failing readiness check, and green again', async () => {
    target.ready = false;
    await expect.poll(async () => (await status('probe-target')).light, WAIT).toBe('amber');
    expect((await status('probe-target')).failingChecks).toEqual([{ name: 'database', error: 'connect ECONNREFUSED 127.0.0.1:5432' }]);
    target.ready = true;
    await expect.poll(async () => (await status('probe-target')).light, WAIT).toBe('green');
  });

  it('turns red when the service stops, and counts its restart (kept in Redis) when it is back', async () => {
    await target.stop();
    await expect.poll(async () => (await status('probe-target')).light, WAIT).toBe('red');
    const restartedAt = Math.floor(Date.now() / 1000) - 5;
    await target.start(restartedAt);
    // Restarted within the last 10 minutes: amber, with the restart counted.
    await expect.poll(async () => (await status('probe-target')).restarts, WAIT).toBe(1);
    const back = await status('probe-target');
    expect(back).toMatchObject({ light: 'amber', live: true, ready: true, lastRestartAt: new Date(restartedAt * 1000).toISOString() });
    expect(back.uptimeSeconds).toBeLessThan(60);

    // A dashboard started afresh on the same Redis keeps the count, and does not count the same process twice.
    const second = await startDashboard({ services, urls, prefix: dashboard.prefix });
    try {
      second.monitor.start();
      await expect.poll(async () => (await status('probe-target', second)).live, WAIT).toBe(true);
      expect((await status('probe-target', second)).restarts).toBe(1);
    } finally {
      await second.close({ keepKeys: true });
    }
  });
});

describe('live updates', () => {
  it('streams the overview to an operator, refuses others, and ends the stream when the dashboard shuts down', async () => {
    const own = await startDashboard({ services, urls });
    own.monitor.start();
    const address = await own.app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const refused = await fetch(`${address}/admin/live`, { headers: { authorization: `Bearer ${own.userToken}` } });
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('auth.role_required');
      expect((await fetch(`${address}/admin/live`)).status).toBe(401);

      const response = await fetch(`${address}/admin/live`, { headers: { authorization: `Bearer ${own.operatorToken}` } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      while ((text.match(/event: overview\n/g) ?? []).length < 2) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended early: ${text}`);
        text += value;
      }
      const first = /event: overview\ndata: (.*)\n/.exec(text)![1]!;
      expect((JSON.parse(first) as { services: ServiceStatus[] }).services.map((service) => service.name)).toEqual(['probe-target', 'never-started']);

      const closing = own.app.close();
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      await closing;
    } finally {
      await own.close();
    }
  });
});
