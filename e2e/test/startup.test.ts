import { describe, expect, it } from 'vitest';
import { startServiceProcess } from '@civildiy/common/testing';
import { root } from './system.ts';

describe('service start-up', () => {
  it('stops with one clear message when Redis is unreachable', async () => {
    const service = await startServiceProcess({ root, workspace: 'worker', env: { REDIS_BROKER_URL: 'redis://127.0.0.1:1', WORKER_PORT: '0' } });
    const exit = await service.exited;
    expect(exit.code).toBe(1);
    expect(service.output()).toContain('Redis is not reachable at redis://127.0.0.1:1');
    expect(service.output()).not.toContain('"stack"');
  });

  it('stops with exit code 78 naming a bad environment variable and what was expected', async () => {
    const service = await startServiceProcess({ root, workspace: 'order-service', env: { ORDER_PORT: 'eighty', REDIS_BROKER_URL: 'not-a-url' } });
    const exit = await service.exited;
    expect(exit.code).toBe(78);
    expect(service.output()).toContain('ORDER_PORT');
    expect(service.output()).toContain('the HTTP port of order-service');
    expect(service.output()).toContain('REDIS_BROKER_URL');
  });
});
