/**
 * The Consul adapter (src/discovery: ConsulClient, ConsulDiscovery, replaceKvTree; src/runtime:
 * ConsulRegistration) checked the same way against the fake Consul (src/testing/consul-fake.ts) and,
 * when CONSUL_HTTP_ADDR is set, against that real agent (its checks must reach 127.0.0.1 of this
 * machine: `consul agent -dev` here). Behaviour only the fake can stage (Consul unreachable, failing,
 * restarted without its state, ACL tokens) and what the fake recorded are checked on the fake alone.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConsulClient, ConsulDiscovery, ConsulTransactionError, ServiceNotFoundError, replaceKvTree, type ConsulServiceRegistration } from '../src/discovery/index.ts';
import { newId } from '../src/ids/index.ts';
import { createLogger } from '../src/logging/index.ts';
import { ConsulRegistration, consulServiceRegistration, serviceAddress } from '../src/runtime/consul-registration.ts';
import { FakeConsul } from '../src/testing/consul-fake.ts';

const logger = createLogger({ service: 'consul-test', level: 'silent' });

/** A stand-in service instance: `/health/ready` answers 200 or 503 as told. */
class ReadinessStub {
  ready = true;
  private constructor(private readonly server: Server) {}

  static async start(): Promise<ReadinessStub> {
    const server = createServer((request, response) => {
      const ok = request.url === '/health/ready' ? stub.ready : request.url === '/health/live';
      response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ready' : 'not_ready' }));
    });
    const stub = new ReadinessStub(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return stub;
  }

  get port(): number {
    const address = this.server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    return address.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Target {
  title: string;
  skip: boolean;
  /** The agent's address and token for the suite. */
  connect(): Promise<{ address: string; token?: string }>;
  /** How often checks run: the fake takes any interval, Consul floors it to 1 s. */
  checkIntervalMs: number;
  close(): Promise<void>;
}

let fake: FakeConsul | undefined;
const realAddress = process.env.CONSUL_HTTP_ADDR;
const targets: Target[] = [
  {
    title: 'the fake Consul',
    skip: false,
    connect: async () => {
      fake ??= await FakeConsul.start();
      return { address: fake.url };
    },
    checkIntervalMs: 200,
    close: async () => fake?.close(),
  },
  {
    title: realAddress ? `a real Consul agent at ${realAddress}` : 'a real Consul agent (skipped: CONSUL_HTTP_ADDR is unset; set it to an agent on this machine, e.g. consul agent -dev)',
    skip: !realAddress,
    connect: async () => ({ address: realAddress!, ...(process.env.CONSUL_HTTP_TOKEN ? { token: process.env.CONSUL_HTTP_TOKEN } : {}) }),
    checkIntervalMs: 1_000,
    close: async () => {},
  },
];

for (const target of targets) {
  describe.skipIf(target.skip)(`the Consul adapter against ${target.title}`, () => {
    const cleanups: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });
    afterAll(() => target.close());

    const client = async () => {
      const { address, token } = await target.connect();
      return new ConsulClient({ address, token });
    };
    /** A ready stand-in instance of `service`, registered through ConsulRegistration (deregistered after the test). */
    const instance = async (consul: ConsulClient, service: string, host: string) => {
      const stub = await ReadinessStub.start();
      const registration = new ConsulRegistration({
        client: consul,
        logger,
        registration: consulServiceRegistration({ service, address: '127.0.0.1', port: stub.port, version: '1.2.3', checkIntervalMs: target.checkIntervalMs, host }),
      });
      registration.start();
      cleanups.push(() => stub.close(), () => registration.close());
      await registration.whenRegistered();
      return { stub, registration };
    };
    const discoveryOf = (consul: ConsulClient, services: string[] = []) => {
      const discovery = new ConsulDiscovery({ client: consul, services, waitMs: 10_000, minQueryIntervalMs: 50, logger });
      cleanups.push(() => discovery.close());
      return discovery;
    };
    const uniqueService = () => `contract-${newId().slice(-12)}`;

    it('registers an instance with a check of its /health/ready: it is found once the check passes, with its address, port, tags and version', async () => {
      const consul = await client();
      const service = uniqueService();
      const { stub, registration } = await instance(consul, service, 'host-a');
      expect(registration.id).toBe(`${service}-host-a-${stub.port}`);
      expect(await consul.hasService(registration.id)).toBe(true);

      await expect.poll(async () => (await consul.healthyInstances(service)).instances.map((found) => found.id), { timeout: 10_000 }).toEqual([registration.id]);
      const [found] = (await consul.healthyInstances(service)).instances;
      expect(found).toMatchObject({ service, address: '127.0.0.1', port: stub.port, meta: { version: '1.2.3' } });
      expect(found!.tags).toEqual(expect.arrayContaining(['civildiy', 'version=1.2.3']));
    });

    it('deregisters on close: the instance is gone from the agent and from the health answers at once', async () => {
      const consul = await client();
      const service = uniqueService();
      const { registration } = await instance(consul, service, 'host-a');
      const discovery = discoveryOf(consul, [service]);
      await expect.poll(() => discovery.instances(service), { timeout: 10_000 }).toHaveLength(1);

      await registration.close();
      expect(await consul.hasService(registration.id)).toBe(false);
      expect((await consul.healthyInstances(service)).instances).toEqual([]);
      await expect.poll(() => discovery.instances(service), { timeout: 10_000 }).toEqual([]);
      await expect(discovery.resolve(service)).rejects.toBeInstanceOf(ServiceNotFoundError);
    });

    it('watches health with blocking queries: an instance whose check turns critical leaves the answers, and comes back once it passes', async () => {
      const consul = await client();
      const service = uniqueService();
      const a = await instance(consul, service, 'host-a');
      const b = await instance(consul, service, 'host-b');
      const discovery = discoveryOf(consul, [service]);
      await expect.poll(() => discovery.instances(service), { timeout: 10_000 }).toEqual([a.stub.url, b.stub.url].sort());

      b.stub.ready = false;
      await expect.poll(() => discovery.instances(service), { timeout: 10_000 }).toEqual([a.stub.url]);
      const resolved = await Promise.all(Array.from({ length: 4 }, () => discovery.resolve(service)));
      expect(new Set(resolved)).toEqual(new Set([a.stub.url]));

      b.stub.ready = true;
      await expect.poll(() => discovery.instances(service), { timeout: 10_000 }).toEqual([a.stub.url, b.stub.url].sort());
    });

    it('spreads resolve over the healthy instances, round-robin', async () => {
      const consul = await client();
      const service = uniqueService();
      const a = await instance(consul, service, 'host-a');
      const b = await instance(consul, service, 'host-b');
      const discovery = discoveryOf(consul, [service]);
      await expect.poll(() => discovery.instances(service), { timeout: 10_000 }).toHaveLength(2);

      const resolved = [];
      for (let i = 0; i < 4; i++) resolved.push(await discovery.resolve(service));
      expect(resolved.filter((url) => url === a.stub.url)).toHaveLength(2);
      expect(resolved.filter((url) => url === b.stub.url)).toHaveLength(2);
      expect(resolved[0]).not.toBe(resolved[1]);
    });

    it('answers for a service it was not told about from the first call on, and "not found" for one without a healthy instance', async () => {
      const consul = await client();
      const service = uniqueService();
      const { stub } = await instance(consul, service, 'host-a');
      await expect.poll(async () => (await consul.healthyInstances(service)).instances.length, { timeout: 10_000 }).toBe(1);
      const discovery = discoveryOf(consul);

      expect(await discovery.resolve(service)).toBe(stub.url);
      const missing = uniqueService();
      await expect(discovery.resolve(missing)).rejects.toThrow(`No healthy instance of ${missing} is registered in Consul`);
      expect(await discovery.instances(missing)).toEqual([]);
    });

    it('replaces a KV tree in one transaction: stale keys go, new ones come, keys beside the tree stay', async () => {
      const consul = await client();
      const root = `civildiy-test-${newId().slice(-12)}`;
      cleanups.push(() => consul.transaction([{ verb: 'delete-tree', key: `${root}/` }, { verb: 'delete-tree', key: `${root}-beside/` }]));
      await consul.transaction([
        { verb: 'set', key: `${root}/http/routers/old/rule`, value: 'PathPrefix(`/old`)' },
        { verb: 'set', key: `${root}-beside/keep`, value: 'kept' },
      ]);
      const entries = {
        [`${root}/http/routers/posts/rule`]: 'PathPrefix(`/posts`)',
        [`${root}/http/routers/posts/service`]: 'posts-service',
        [`${root}/http/services/posts-service/loadBalancer/servers/0/url`]: 'http://posts:8103',
      };

      expect(await replaceKvTree(consul, root, entries)).toEqual({ atomic: true, written: 3, transactions: 1 });
      expect(await consul.kvTree(`${root}/`)).toEqual(entries);
      expect(await consul.kvTree(`${root}-beside/`)).toEqual({ [`${root}-beside/keep`]: 'kept' });
    });

    it('replaces a KV tree too large for one transaction in steps, ending with exactly the new entries', async () => {
      const consul = await client();
      const root = `civildiy-test-${newId().slice(-12)}`;
      cleanups.push(() => consul.transaction([{ verb: 'delete-tree', key: `${root}/` }]));
      await consul.transaction(Array.from({ length: 5 }, (_, i) => ({ verb: 'set' as const, key: `${root}/stale/${i}`, value: 'x' })));
      const entries = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`${root}/fresh/${i}`, `value ${i} ✓`]));

      expect(await replaceKvTree(consul, `${root}/`, entries, { maxOperations: 4 })).toEqual({ atomic: false, written: 10, transactions: 5 });
      expect(await consul.kvTree(`${root}/`)).toEqual(entries);
    });

    it('applies a transaction all or nothing: a rolled-back one names the failing operation and writes nothing', async () => {
      const consul = await client();
      const root = `civildiy-test-${newId().slice(-12)}`;
      cleanups.push(() => consul.transaction([{ verb: 'delete-tree', key: `${root}/` }]));
      await consul.transaction([{ verb: 'set', key: `${root}/taken`, value: '1' }]);

      const attempt = consul.transaction([
        { verb: 'set', key: `${root}/new`, value: '2' },
        { verb: 'check-not-exists', key: `${root}/taken` },
      ]);
      await expect(attempt).rejects.toBeInstanceOf(ConsulTransactionError);
      await expect(attempt).rejects.toMatchObject({ code: 'consul.transaction_rolled_back', failures: [{ opIndex: 1 }] });
      expect(await consul.kvTree(`${root}/`)).toEqual({ [`${root}/taken`]: '1' });
    });

    it('refuses KV entries outside the tree it replaces, before writing anything', async () => {
      const consul = await client();
      const root = `civildiy-test-${newId().slice(-12)}`;
      await expect(replaceKvTree(consul, root, { [`${root}/a`]: '1', [`${root}x/b`]: '2' })).rejects.toThrow(`keys outside ${root}/: ${root}x/b`);
      await expect(replaceKvTree(consul, '/', {})).rejects.toThrow('needs a prefix');
      expect(await consul.kvKeys(`${root}`)).toEqual([]);
    });
  });
}

describe('the Consul adapter on what only the fake Consul can stage', () => {
  let consul: FakeConsul;
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await consul.close();
  });
  const startFake = async (options: { token?: string } = {}) => {
    consul = await FakeConsul.start(options);
    return new ConsulClient({ address: consul.url, ...options });
  };
  const registrationOf = (client: ConsulClient, registration: ConsulServiceRegistration, options: { verifyEveryMs?: number } = {}) => {
    const registering = new ConsulRegistration({ client, logger, registration, retry: { delayMs: 20, maxDelayMs: 100 }, ...options });
    cleanups.push(() => registering.close());
    return registering;
  };

  it('sends a registration of <name>-<host>-<port> with tags, meta and an HTTP check of /health/ready that deregisters after a minute critical', async () => {
    const client = await startFake();
    const registration = registrationOf(client, consulServiceRegistration({ service: 'posts-service', address: '10.0.0.7', port: 8103, version: '0.1.0', checkIntervalMs: 10_000, host: 'box.local' }));
    registration.start();
    await registration.whenRegistered();

    const [call] = consul.callsTo('PUT', '/v1/agent/service/register');
    expect(call!.query).toEqual({ 'replace-existing-checks': 'true' });
    expect(call!.body).toEqual({
      ID: 'posts-service-box.local-8103',
      Name: 'posts-service',
      Address: '10.0.0.7',
      Port: 8103,
      Tags: ['civildiy', 'version=0.1.0', 'route=/posts'],
      Meta: { version: '0.1.0' },
      Check: {
        CheckID: 'service:posts-service-box.local-8103',
        Name: 'posts-service readiness',
        HTTP: 'http://10.0.0.7:8103/health/ready',
        Method: 'GET',
        Interval: '10s',
        Timeout: '5s',
        DeregisterCriticalServiceAfter: '1m',
      },
    });
  });

  it('names an instance by the host it runs on, and reaches it at SERVICE_ADDRESS, else HOST, else the host name', () => {
    const registration = consulServiceRegistration({ service: 'feed-service', address: '::1', port: 8104, version: '0.1.0', checkIntervalMs: 250 });
    expect(registration.ID).toBe(`feed-service-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-8104`);
    expect(registration.Check).toMatchObject({ HTTP: 'http://[::1]:8104/health/ready', Interval: '250ms', Timeout: '250ms' });
    expect(serviceAddress({ SERVICE_ADDRESS: 'feed.internal', HOST: '0.0.0.0' })).toBe('feed.internal');
    expect(serviceAddress({ SERVICE_ADDRESS: undefined, HOST: '127.0.0.1' })).toBe('127.0.0.1');
    expect(serviceAddress({ SERVICE_ADDRESS: undefined, HOST: '0.0.0.0' })).toBe(hostname());
  });

  it('keeps trying to register while Consul is unreachable (logging it), and registers once it is back', async () => {
    const client = await startFake();
    await consul.stop();
    const lines: { level: string; msg: string }[] = [];
    const capturing = createLogger({ service: 'consul-test', level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    const registration = new ConsulRegistration({ client, logger: capturing, registration: { ID: 'worker-a-1', Name: 'worker', Address: '127.0.0.1', Port: 1 }, retry: { delayMs: 20, maxDelayMs: 100 } });
    cleanups.push(() => registration.close());
    registration.start();
    let registered = false;
    void registration.whenRegistered().then(() => (registered = true));
    await expect.poll(() => lines.filter((line) => line.msg.startsWith('consul: cannot register')).length, { timeout: 5_000 }).toBeGreaterThan(2);
    expect(lines.filter((line) => line.level === 'warn')).toHaveLength(1);
    expect(registered).toBe(false);

    await consul.resume();
    await registration.whenRegistered();
    expect(consul.services('worker').map((service) => service.id)).toEqual(['worker-a-1']);
    expect(lines.at(-1)!.msg).toMatch(/^consul: registered worker after \d+ failed attempt\(s\)$/);
  });

  it('registers the instance again when the agent has forgotten it (restarted without its state)', async () => {
    const client = await startFake();
    const registration = registrationOf(client, { ID: 'worker-a-1', Name: 'worker', Address: '127.0.0.1', Port: 1 }, { verifyEveryMs: 50 });
    registration.start();
    await registration.whenRegistered();
    consul.forgetServices();
    await expect.poll(() => consul.services('worker').length, { timeout: 5_000 }).toBe(1);
    expect(consul.callsTo('PUT', '/v1/agent/service/register')).toHaveLength(2);
  });

  it('keeps the last known instances while Consul fails, then follows it again', async () => {
    const client = await startFake();
    const stub = await ReadinessStub.start();
    cleanups.push(() => stub.close());
    await client.registerService({ ID: 'a', Name: 'feed-service', Address: '127.0.0.1', Port: stub.port, Check: { HTTP: `${stub.url}/health/ready`, Interval: '100ms' } });
    const discovery = new ConsulDiscovery({ client, services: ['feed-service'], waitMs: 10_000, retry: { delayMs: 20, maxDelayMs: 100 }, logger });
    cleanups.push(() => discovery.close());
    await expect.poll(() => discovery.instances('feed-service'), { timeout: 5_000 }).toEqual([stub.url]);

    consul.fail(500);
    const failedBefore = consul.calls.length;
    await expect.poll(() => consul.calls.length, { timeout: 5_000 }).toBeGreaterThan(failedBefore + 2);
    expect(await discovery.resolve('feed-service')).toBe(stub.url);

    consul.fail(undefined);
    await client.deregisterService('a');
    await expect.poll(() => discovery.instances('feed-service'), { timeout: 5_000 }).toEqual([]);
  });

  it('says why a service is not found when Consul could not be asked', async () => {
    const client = await startFake();
    await consul.stop();
    const discovery = new ConsulDiscovery({ client, retry: { delayMs: 1_000, maxDelayMs: 1_000 }, logger });
    cleanups.push(() => discovery.close());
    await expect(discovery.resolve('feed-service')).rejects.toThrow(/No healthy instance of feed-service is known: Consul at http:\/\/127\.0\.0\.1:\d+ is unreachable/);
  });

  it('blocks on the health API (index and wait) instead of polling it', async () => {
    const client = await startFake();
    const discovery = new ConsulDiscovery({ client, services: ['feed-service'], waitMs: 30_000, minQueryIntervalMs: 50, logger });
    cleanups.push(() => discovery.close());
    expect(await discovery.instances('feed-service')).toEqual([]);
    await expect.poll(() => consul.callsTo('GET', '/v1/health/service/feed-service').length, { timeout: 5_000 }).toBe(2);

    const stub = await ReadinessStub.start();
    cleanups.push(() => stub.close());
    await client.registerService({ ID: 'a', Name: 'feed-service', Address: '127.0.0.1', Port: stub.port, Check: { HTTP: `${stub.url}/health/ready`, Interval: '100ms' } });
    await expect.poll(() => discovery.instances('feed-service'), { timeout: 5_000 }).toEqual([stub.url]);

    const queries = consul.callsTo('GET', '/v1/health/service/feed-service').map((call) => call.query);
    expect(queries[0]).toEqual({ passing: 'true' });
    for (const query of queries.slice(1)) expect(query).toEqual({ passing: 'true', index: expect.stringMatching(/^[1-9]\d*$/), wait: '30s' });
    // One answer per change: the first, the registration, the check passing; and the query now open.
    expect(queries.length).toBeLessThanOrEqual(4);
  });

  it('sends CONSUL_HTTP_TOKEN as X-Consul-Token', async () => {
    const client = await startFake({ token: 'secret-token' });
    await client.registerService({ ID: 'a', Name: 'feed-service', Address: '127.0.0.1', Port: 1 });
    expect(consul.calls.map((call) => call.token)).toEqual(['secret-token']);
    const anonymous = new ConsulClient({ address: consul.url });
    await expect(anonymous.registerService({ ID: 'b', Name: 'feed-service', Address: '127.0.0.1', Port: 1 })).rejects.toMatchObject({ code: 'consul.request_failed', status: 403 });
  });
});
