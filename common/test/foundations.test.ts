import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, baseEnv, envBool, envInt, envList, loadConfig } from '../src/config/index.ts';
import { currentContext, enrichContext, runWithContext } from '../src/context/index.ts';
import { derivedId, isUuid, newId } from '../src/ids/index.ts';
import { createLogger } from '../src/logging/index.ts';

describe('config', () => {
  const schema = baseEnv.extend({
    PORT: envInt(1, 65535).default(8105).describe('the HTTP port'),
    WORKER_QUEUES: envList.default(['orders']).describe('comma-separated queue names'),
    FLAG: envBool.default(false),
    SECRET: z.string().min(8).describe('a secret of at least 8 characters'),
  });

  it('applies defaults and coerces values', () => {
    const config = loadConfig(schema, { SECRET: 'abcdefgh', PORT: '9000', WORKER_QUEUES: 'a, b,,c', FLAG: 'yes' });
    expect(config).toMatchObject({ PORT: 9000, WORKER_QUEUES: ['a', 'b', 'c'], FLAG: true, REDIS_BROKER_URL: 'redis://127.0.0.1:6379' });
  });

  it('names every bad or missing variable and what it expected', () => {
    let thrown: unknown;
    try {
      loadConfig(schema, { PORT: 'eighty', REDIS_BROKER_URL: 'not a url' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const problems = (thrown as ConfigError).problems;
    expect(problems.map((p) => p.variable).sort()).toEqual(['PORT', 'REDIS_BROKER_URL', 'SECRET']);
    expect(problems.find((p) => p.variable === 'SECRET')?.expected).toContain('a secret of at least 8 characters');
    expect((thrown as Error).message).toContain('PORT');
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig(schema, { SECRET: 'abcdefgh', PORT: '' }).PORT).toBe(8105);
  });

  it('reads the event bus settings: Redis Streams by default, Kafka brokers as a list of host:port', () => {
    expect(loadConfig(baseEnv, {})).toMatchObject({ EVENT_BUS: 'redis', KAFKA_BROKERS: ['127.0.0.1:9092'], KAFKA_PREFIX: '', KAFKA_PARTITIONS: 3 });
    const kafka = loadConfig(baseEnv, { EVENT_BUS: 'kafka', KAFKA_BROKERS: 'kafka-1:9092, 10.0.0.2:19092,[::1]:9093', KAFKA_SESSION_TIMEOUT_MS: '45000' });
    expect(kafka).toMatchObject({ EVENT_BUS: 'kafka', KAFKA_BROKERS: ['kafka-1:9092', '10.0.0.2:19092', '[::1]:9093'], KAFKA_SESSION_TIMEOUT_MS: 45_000 });
  });

  it.each(['kafka-1:9092,,kafka-2:9092', 'kafka-1', 'kafka-1:0', 'kafka-1:70000', 'http://kafka-1:9092', ' , '])(
    'rejects KAFKA_BROKERS=%j naming the variable',
    (brokers) => {
      const error = catchError(() => loadConfig(baseEnv, { KAFKA_BROKERS: brokers }));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.map((p) => p.variable)).toEqual(['KAFKA_BROKERS']);
    },
  );
});

function catchError(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('ids', () => {
  it('makes time-ordered UUIDv7 for new entities', () => {
    const ids = Array.from({ length: 50 }, () => newId());
    expect(ids.every((id) => isUuid(id, 7))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
  });

  it('derives the same UUIDv5 from the same parts and different ones otherwise', () => {
    expect(derivedId('notification', 'abc')).toBe(derivedId('notification', 'abc'));
    expect(derivedId('notification', 'abc')).not.toBe(derivedId('notification', 'abd'));
    expect(isUuid(derivedId('x', 1), 5)).toBe(true);
    expect(() => derivedId()).toThrow();
  });
});

describe('context and logging', () => {
  it('carries correlation and user ids into every log line inside a context, across awaits', async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(JSON.parse(String(chunk)));
        callback();
      },
    });
    const logger = createLogger({ service: 'svc', destination });
    logger.info('outside');
    await runWithContext({ correlationId: 'corr-1' }, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      enrichContext({ userId: 'user-1' });
      logger.info('inside');
      expect(currentContext()).toEqual({ correlationId: 'corr-1', userId: 'user-1' });
    });
    expect(lines[0]).toMatchObject({ service: 'svc', msg: 'outside' });
    expect(lines[0]).not.toHaveProperty('correlationId');
    expect(lines[1]).toMatchObject({ service: 'svc', msg: 'inside', correlationId: 'corr-1', userId: 'user-1', level: 'info' });
  });

  it('redacts passwords', () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk));
        callback();
      },
    });
    createLogger({ service: 'svc', destination }).info({ password: 'hunter2' }, 'login');
    expect(lines[0]).not.toContain('hunter2');
  });
});
