/**
 * Event bus benchmarks: Redis Streams (`EVENT_BUS=redis`) and Kafka (`EVENT_BUS=kafka`, on a local
 * single-node broker this benchmark starts as `npm run kafka` would) in the same run, the order of
 * the transports swapped every repetition so drift hits both. The machine is small (2 cores): every
 * figure is reported as a spread over the repetitions.
 *
 * 1. Relay throughput: ROWS event rows written with the outbox writer (WRITERS concurrent
 *    transactions of 250 rows) into the `outbox` table of a Postgres server database created for the
 *    benchmark (dropped after) and migrated with posts-service's migrations, as `openDatabase` does
 *    at a service's start; then one `OutboxRelay` (batchSize BATCH, the services' default) times
 *    `publishPending()` delivering all of them. The table is emptied before each write and analysed
 *    after it, so the claim's plan does not depend on when autovacuum gets there. Two key patterns:
 *    `distinct` (a `post.created` per post, every key different, as real traffic) and `shared`
 *    (`post.updated` of FEW_KEYS posts: one key's rows go out one after the other).
 *    Goal: ≥ 5,000 rows/s on either transport. Where the time goes, in the same repetitions:
 *    - `relay → no-op`: the same relay with a publisher that does nothing: the database's claim and
 *      settle plus the relay's own CPU;
 *    - `publish as relay`: the same envelopes published without the relay or the database, BATCH at
 *      a time, one key's events in order (what the broker costs the relay);
 *    - `publish all`: every envelope handed to the bus at once (the transport's ceiling).
 *    For each, CPU in % of one core (the machine has 200): this process (relay, clients), the broker
 *    (the Kafka JVM or redis-server), Postgres (all its processes) and the whole machine.
 * 2. Consumer throughput: ROWS `post.created` (distinct keys) published first, then one consumer
 *    group subscribes from the beginning (concurrency CONCURRENCY, a no-op handler): events/s from
 *    `subscribe()` to the last event handled, and from the first one (without the group's start).
 * 3. Where an event's time goes, in this process: POST_RATE `post.created`/s for LATENCY_SECONDS, each
 *    written in its own transaction and the relay woken after the commit (as posts-service does),
 *    relayed by an `OutboxRelay` (started, as in a service) through a publisher that notes when each
 *    publish starts and ends, and handled by a consumer group on the same transport (concurrency
 *    16). Per event: commit → publish starts (the relay's wake and claim, waiting for its pass in
 *    progress), the publish (the broker's round trip), publish answered → handled (the consumer's
 *    fetch), and commit → handled.
 * 4. Post → visible in the feed at POST_RATE posts/s through the gateway (`post-visibility.ts`, the
 *    feed benchmark's measurement) on two social slices started side by side, one on Redis Streams
 *    and one on Kafka (this benchmark's broker, a KAFKA_PREFIX of its own), rounds alternating
 *    between them. A tap (a consumer group of this process, concurrency 16, on the slice's bus) notes
 *    when each `post.created` reaches a fresh group: POST answered → tapped is the relay plus the
 *    transport, tapped → visible is feed-service's projection plus the poll (its resolution, one
 *    poll round trip, is reported). Goal on Kafka: p99 < 50 ms.
 * 5. Broker memory: the Kafka JVM's VmRSS (VmHWM: its peak; RssAnon / RssFile: heap and JVM / mapped
 *    files) idle after start, after parts 1–3 and at the end.
 *
 * `npx tsx bench/events.ts` prints tables; `run()` returns the figures, `printReport()` prints them.
 * Env: BENCH_EVENTS_ROWS (20000), BENCH_EVENTS_REPS (3), BENCH_EVENTS_TRANSPORTS (redis,kafka),
 * BENCH_EVENTS_PARTS (relay,consumer,latency,visibility), BENCH_EVENTS_FEW_KEYS (20),
 * BENCH_EVENTS_BATCH (500, the relay's default), BENCH_EVENTS_WRITERS (4), BENCH_EVENTS_CONCURRENCY (16),
 * BENCH_EVENTS_POST_RATE (100, parts 3 and 4), BENCH_EVENTS_LATENCY_SECONDS (20),
 * BENCH_EVENTS_POST_SECONDS (20), BENCH_EVENTS_POST_REPS (3), BENCH_EVENTS_POLLERS (2),
 * BENCH_EVENTS_KAFKA_HEAP_MB (384, the local broker's default), POSTGRES_TEST_URL (the server the
 * database is created on; default postgres://postgres@127.0.0.1:5432/postgres), REDIS_BROKER_URL.
 * The broker's jars are kept in .data/bench-kafka/kafka/lib (fetched once); its data is deleted after the run.
 */
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { sql } from 'drizzle-orm';
import { baseEnv, createLogger, loadConfig, newId } from '@civildiy/common';
import { postCreated, postUpdated, type PostSnapshot } from '@civildiy/common/contracts';
import { openDatabase, type Database } from '@civildiy/common/db';
import { createEnvelope, type EnvelopePublisher, type EventBus, type EventEnvelope } from '@civildiy/common/events';
import { LocalKafkaBroker } from '@civildiy/common/kafka';
import { inboxTable, outbox, OutboxRelay, outboxTable } from '@civildiy/common/outbox';
import { createEventBus } from '@civildiy/common/runtime';
import { freePort, newPostSnapshot, removeRedisPrefix, repositoryRoot, SOCIAL_SERVICES, type RegisteredUser, createTestDatabase } from '@civildiy/common/testing';
import { postToFeedVisibility, seedFeed, type VisibilityFigures } from './post-visibility.ts';
import {
  commandCpuMs,
  cpuMs,
  cpuSnapshot,
  cpuUsedBetween,
  machineJiffies,
  printTable,
  REDIS_URL,
  redisPid,
  registerUser,
  residentMemoryMiB,
  sleep,
  startSlice,
  stopAll,
  summary,
  type Slice,
} from './system.ts';

type Transport = 'redis' | 'kafka';
type KeyPattern = 'distinct' | 'shared';

const ROWS = Number(process.env.BENCH_EVENTS_ROWS ?? 20_000);
const REPS = Number(process.env.BENCH_EVENTS_REPS ?? 3);
const TRANSPORTS = list(process.env.BENCH_EVENTS_TRANSPORTS ?? 'redis,kafka', ['redis', 'kafka'] as const);
const PARTS = list(process.env.BENCH_EVENTS_PARTS ?? 'relay,consumer,latency,visibility', ['relay', 'consumer', 'latency', 'visibility'] as const);
const FEW_KEYS = Number(process.env.BENCH_EVENTS_FEW_KEYS ?? 20);
const BATCH = Number(process.env.BENCH_EVENTS_BATCH ?? 500);
const WRITERS = Number(process.env.BENCH_EVENTS_WRITERS ?? 4);
const CONCURRENCY = Number(process.env.BENCH_EVENTS_CONCURRENCY ?? 16);
const POST_RATE = Number(process.env.BENCH_EVENTS_POST_RATE ?? 100);
const LATENCY_SECONDS = Number(process.env.BENCH_EVENTS_LATENCY_SECONDS ?? 20);
const POST_SECONDS = Number(process.env.BENCH_EVENTS_POST_SECONDS ?? 20);
const POST_REPS = Number(process.env.BENCH_EVENTS_POST_REPS ?? 3);
const POLLERS = Number(process.env.BENCH_EVENTS_POLLERS ?? 2);
const KAFKA_HEAP_MB = Number(process.env.BENCH_EVENTS_KAFKA_HEAP_MB ?? 384);

const RELAY_GOAL_PER_S = 5_000;
const KAFKA_VISIBLE_P99_GOAL_MS = 50;
const ROWS_PER_TRANSACTION = 250;
const CONSUME_TIMEOUT_MS = 180_000;
const USERS = 10;
const POSTS_MIGRATIONS = path.join(repositoryRoot, 'posts-service', 'src', 'db', 'migrations');
/** The outbox part of a service's schema (the tables the bench touches). */
const schema = { outboxTable, inboxTable };
type BenchDatabase = Database<typeof schema>;
const BODY = 'Disassemble the pallets, plane the boards, cut the legs at 10 degrees, glue and screw, oil twice. '.repeat(3);

const logger = createLogger({ service: 'bench-events', level: 'warn' });
const runId = newId().slice(-8);
let prefixes = 0;

function list<T extends string>(value: string, known: readonly T[]): T[] {
  const items = value.split(',').map((item) => item.trim()).filter(Boolean);
  const unknown = items.filter((item) => !known.includes(item as T));
  if (unknown.length > 0) throw new Error(`Unknown value(s) ${unknown.join(', ')}: expected some of ${known.join(', ')}`);
  return items as T[];
}

/** The transports in this repetition's order: swapped every other one. */
const ordered = (rep: number): Transport[] => (rep % 2 === 1 ? [...TRANSPORTS] : [...TRANSPORTS].reverse());

/** What the measurements share: the broker, the pids whose CPU is read. */
interface Setup {
  broker: LocalKafkaBroker | undefined;
  redisPid: number | undefined;
}

/** A fresh bus on `transport` under a prefix of its own (Redis keys / Kafka topics and groups), built as services build theirs. */
async function openBus(setup: Setup, transport: Transport): Promise<{ bus: EventBus; prefix: string }> {
  const prefix = `bench-events-${runId}-${++prefixes}`;
  const env = { EVENT_BUS: transport, REDIS_BROKER_URL: REDIS_URL, REDIS_KEY_PREFIX: prefix, KAFKA_BROKERS: setup.broker?.bootstrap, KAFKA_PREFIX: `${prefix}.` };
  return { bus: await createEventBus(loadConfig(baseEnv, env), { service: 'bench-events', logger }), prefix };
}

/** Closes a bus of {@link openBus} and deletes its Redis keys (a Kafka prefix's topics go with the broker's data at the end). */
async function closeBus(transport: Transport, opened: { bus: EventBus; prefix: string }): Promise<void> {
  await opened.bus.close();
  if (transport === 'redis') await removeRedisPrefix(opened.prefix);
}

// ---- CPU -------------------------------------------------------------------------------------

interface CpuSample {
  at: number;
  bench: number;
  redis: number;
  kafka: number;
  postgres: Map<number, number>;
  machine: { busy: number; total: number };
}

/** CPU in % of one core over a measurement (the machine has 100 × cores). */
interface CpuShares {
  'bench %': number;
  /** None without a transport (the no-op publisher). */
  'broker %'?: number;
  'pg %': number;
  'machine %': number;
  /** The machine's busy time not spent by this process, Postgres, redis-server or the Kafka JVM: other work on the machine, which skews the figure. */
  'other %': number;
}

async function cpuSample(setup: Setup): Promise<CpuSample> {
  const self = process.cpuUsage();
  const of = (pid: number | undefined) => (pid === undefined ? Promise.resolve(0) : cpuMs(pid).catch(() => 0));
  return {
    at: performance.now(),
    bench: (self.user + self.system) / 1000,
    redis: await of(setup.redisPid),
    kafka: await of(setup.broker?.pid),
    postgres: await commandCpuMs('postgres'),
    machine: await machineJiffies(),
  };
}

function cpuShares(before: CpuSample, after: CpuSample, transport: Transport | undefined): CpuShares {
  const wall = after.at - before.at;
  const percent = (ms: number) => Math.round((ms / wall) * 100);
  const used = (name: 'bench' | 'redis' | 'kafka' | 'postgres') => (name === 'postgres' ? cpuUsedBetween(before.postgres, after.postgres) : after[name] - before[name]);
  const machine = ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) * 100 * os.cpus().length;
  return {
    'bench %': percent(used('bench')),
    ...(transport ? { 'broker %': percent(used(transport)) } : {}),
    'pg %': percent(used('postgres')),
    'machine %': Math.round(machine),
    'other %': Math.max(0, Math.round(machine - (used('bench') + used('redis') + used('kafka') + used('postgres')) / wall * 100)),
  };
}

/** Times `work` (which handles `items`) with the CPU of everyone involved. */
async function measure(setup: Setup, transport: Transport | undefined, items: number, work: () => Promise<void>): Promise<{ ms: number; perS: number; cpu: CpuShares }> {
  const before = await cpuSample(setup);
  await work();
  const after = await cpuSample(setup);
  const ms = after.at - before.at;
  return { ms: Math.round(ms), perS: Math.round((items / ms) * 1000), cpu: cpuShares(before, after, transport) };
}

// ---- part 1: the relay -----------------------------------------------------------------------

/** One event to write or publish. */
interface BenchEvent {
  event: typeof postCreated | typeof postUpdated;
  data: PostSnapshot;
}

function benchEvents(pattern: KeyPattern, rows: number): BenchEvent[] {
  if (pattern === 'distinct') return Array.from({ length: rows }, (_, index) => ({ event: postCreated, data: newPostSnapshot({ title: `Build log ${index}`, body: BODY }) }));
  const posts = Array.from({ length: FEW_KEYS }, (_, index) => newPostSnapshot({ title: `Build log ${index}`, body: BODY }));
  return Array.from({ length: rows }, (_, index) => ({ event: postUpdated, data: { ...posts[index % FEW_KEYS]!, version: 2 + Math.floor(index / FEW_KEYS) } }));
}

/**
 * Empties the outbox, writes the events as a service does (the outbox writer inside its
 * transactions) and analyses the table, so every run claims with the plan of an analysed backlog
 * (with statistics from before the backlog the claim can be many times slower); resolves with the
 * write time.
 */
async function writeRows(db: BenchDatabase, events: readonly BenchEvent[]): Promise<number> {
  await db.execute(sql`truncate outbox`);
  const started = performance.now();
  let next = 0;
  const writer = async () => {
    while (next < events.length) {
      const rows = events.slice(next, (next += ROWS_PER_TRANSACTION));
      await db.transaction(async (tx) => {
        for (const { event, data } of rows) await outbox.event(tx, event, data);
      });
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  const ms = performance.now() - started;
  await db.execute(sql`analyze outbox`);
  return ms;
}

/** Publishes as the relay's delivery step does, without the database: BATCH envelopes at a time, different keys concurrently, one key's in order. */
async function publishAsTheRelay(publisher: EnvelopePublisher, envelopes: readonly EventEnvelope[]): Promise<void> {
  for (let from = 0; from < envelopes.length; from += BATCH) {
    const chains = new Map<string, EventEnvelope[]>();
    for (const envelope of envelopes.slice(from, from + BATCH)) {
      const chain = chains.get(envelope.key);
      if (chain) chain.push(envelope);
      else chains.set(envelope.key, [envelope]);
    }
    await Promise.all(
      [...chains.values()].map(async (chain) => {
        for (const envelope of chain) await publisher.publishEnvelope(envelope);
      }),
    );
  }
}

type RelayMode = 'relay' | 'relay → no-op' | 'publish as relay' | 'publish all';

interface RelayRow extends CpuShares {
  rep: number;
  keys: KeyPattern;
  mode: RelayMode;
  transport: Transport | '-';
  rows: number;
  ms: number;
  'rows/s': number;
  /** Rows/s of the outbox writes before a relay run. */
  'written/s'?: number;
}

const noopPublisher: EnvelopePublisher = { publishEnvelope: async () => {} };

async function relayPart(setup: Setup, db: BenchDatabase): Promise<RelayRow[]> {
  const rows: RelayRow[] = [];
  const add = (row: RelayRow) => {
    rows.push(row);
    console.log(`  rep ${row.rep} ${row.keys} ${row.mode} ${row.transport}: ${row['rows/s']} rows/s (${row.ms} ms)`);
  };
  const relayRun = async (rep: number, keys: KeyPattern, transport: Transport | undefined) => {
    const opened = transport ? await openBus(setup, transport) : undefined;
    try {
      // Connections, topic and producer id before the clock starts.
      if (opened) await opened.bus.publish(postCreated, newPostSnapshot());
      const written = await writeRows(db, benchEvents(keys, ROWS));
      const relay = new OutboxRelay({ db, publisher: opened?.bus ?? noopPublisher, logger, batchSize: BATCH });
      await relay.purgeSent(); // the first pass's cleanup, outside the clock
      let result = { published: 0, failed: 0 };
      const figures = await measure(setup, transport, ROWS, async () => {
        result = await relay.publishPending();
      });
      if (result.published !== ROWS || result.failed > 0) throw new Error(`the relay published ${result.published} of ${ROWS} rows (${result.failed} failed)`);
      add({ rep, keys, mode: transport ? 'relay' : 'relay → no-op', transport: transport ?? '-', rows: ROWS, ms: figures.ms, 'rows/s': figures.perS, 'written/s': Math.round((ROWS / written) * 1000), ...figures.cpu });
    } finally {
      if (opened && transport) await closeBus(transport, opened);
    }
  };
  const publishRun = async (rep: number, keys: KeyPattern, transport: Transport, mode: 'publish as relay' | 'publish all') => {
    const opened = await openBus(setup, transport);
    try {
      await opened.bus.publish(postCreated, newPostSnapshot());
      const envelopes = benchEvents(keys, ROWS).map(({ event, data }) => createEnvelope(event, data) as EventEnvelope);
      const figures = await measure(setup, transport, ROWS, () =>
        mode === 'publish all' ? Promise.all(envelopes.map((envelope) => opened.bus.publishEnvelope(envelope))).then(() => undefined) : publishAsTheRelay(opened.bus, envelopes),
      );
      add({ rep, keys, mode, transport, rows: ROWS, ms: figures.ms, 'rows/s': figures.perS, ...figures.cpu });
    } finally {
      await closeBus(transport, opened);
    }
  };
  for (let rep = 1; rep <= REPS; rep++) {
    for (const keys of ['distinct', 'shared'] as const) {
      for (const transport of ordered(rep)) await relayRun(rep, keys, transport);
      await relayRun(rep, keys, undefined);
      for (const transport of ordered(rep)) await publishRun(rep, keys, transport, 'publish as relay');
      if (keys === 'distinct') for (const transport of ordered(rep)) await publishRun(rep, keys, transport, 'publish all');
    }
  }
  return rows;
}

// ---- part 2: a consumer group ----------------------------------------------------------------

interface ConsumerRow extends CpuShares {
  rep: number;
  transport: Transport;
  events: number;
  'published/s': number;
  'start ms': number;
  ms: number;
  'events/s': number;
  'steady/s': number;
}

async function consumerPart(setup: Setup): Promise<ConsumerRow[]> {
  const rows: ConsumerRow[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    for (const transport of ordered(rep)) {
      const opened = await openBus(setup, transport);
      try {
        // Connections, topic and producer id first, with an event the group skips (it subscribes to post.created only).
        await opened.bus.publish(postUpdated, newPostSnapshot({ version: 2 }));
        const envelopes = benchEvents('distinct', ROWS).map(({ event, data }) => createEnvelope(event, data) as EventEnvelope);
        const publishStarted = performance.now();
        for (let from = 0; from < envelopes.length; from += 1_000) await Promise.all(envelopes.slice(from, from + 1_000).map((envelope) => opened.bus.publishEnvelope(envelope)));
        const publishedPerS = Math.round((ROWS / (performance.now() - publishStarted)) * 1000);

        // Distinct ids: a redelivered event must not end the clock early.
        const handled = new Set<string>();
        let first: number | undefined;
        let last = Number.NaN;
        let allHandled!: () => void;
        const done = new Promise<void>((resolve) => (allHandled = resolve));
        let subscribedAt = Number.NaN;
        const figures = await measure(setup, transport, ROWS, async () => {
          subscribedAt = performance.now();
          const subscription = opened.bus.subscribe({
            group: 'bench-consumer',
            events: [postCreated],
            concurrency: CONCURRENCY,
            startFrom: 'beginning',
            handle: (envelope) => {
              first ??= performance.now();
              handled.add(envelope.id);
              if (handled.size === ROWS && Number.isNaN(last)) {
                last = performance.now();
                allHandled();
              }
            },
          });
          const timedOut = await Promise.race([done.then(() => false), sleep(CONSUME_TIMEOUT_MS).then(() => true)]);
          await subscription.close();
          if (timedOut) throw new Error(`${transport}: ${handled.size} of ${ROWS} events handled within ${CONSUME_TIMEOUT_MS} ms`);
        });
        const row: ConsumerRow = {
          rep,
          transport,
          events: ROWS,
          'published/s': publishedPerS,
          'start ms': Math.round((first ?? Number.NaN) - subscribedAt),
          ms: Math.round(last - subscribedAt),
          'events/s': Math.round((ROWS / (last - subscribedAt)) * 1000),
          'steady/s': Math.round((ROWS / (last - (first ?? Number.NaN))) * 1000),
          ...figures.cpu,
        };
        rows.push(row);
        console.log(`  rep ${rep} ${transport}: ${row['events/s']} events/s (${row['steady/s']}/s after the first)`);
      } finally {
        await closeBus(transport, opened);
      }
    }
  }
  return rows;
}

// ---- part 3: one event's way, in this process ------------------------------------------------

interface LatencyRow {
  rep: number;
  transport: Transport;
  events: number;
  handled: number;
  'claim p50': number;
  'claim p99': number;
  'publish p50': number;
  'publish p99': number;
  'fetch p50': number;
  'fetch p99': number;
  'total p50': number;
  'total p99': number;
  'total max': number;
}

/** When each event (by envelope id) was committed, handed to the bus, answered by it and handled (`performance.now()`). */
interface EventTimes {
  committed?: number;
  publishing?: number;
  published?: number;
  handled?: number;
}

async function latencyRun(setup: Setup, db: BenchDatabase, rep: number, transport: Transport): Promise<LatencyRow> {
  await db.execute(sql`truncate outbox`);
  const opened = await openBus(setup, transport);
  const times = new Map<string, EventTimes>();
  const timesOf = (id: string) => {
    let entry = times.get(id);
    if (!entry) times.set(id, (entry = {}));
    return entry;
  };
  const timedPublisher: EnvelopePublisher = {
    publishEnvelope: async (envelope) => {
      timesOf(envelope.id).publishing = performance.now();
      await opened.bus.publishEnvelope(envelope);
      timesOf(envelope.id).published = performance.now();
    },
  };
  const relay = new OutboxRelay({ db, publisher: timedPublisher, logger, batchSize: BATCH });
  const subscription = opened.bus.subscribe({
    group: 'bench-latency',
    events: [postCreated],
    startFrom: 'new',
    concurrency: 16,
    handle: (envelope) => {
      timesOf(envelope.id).handled ??= performance.now();
    },
  });
  try {
    await subscription.ready;
    relay.start();
    const send = async (index: number) => {
      const id = await db.transaction((tx) => outbox.event(tx, postCreated, newPostSnapshot({ title: `Build log ${index}`, body: BODY })));
      timesOf(id).committed = performance.now();
      relay.wake();
      return id;
    };
    // Warm-up: a second of traffic, then forget it.
    const warmUp = await Promise.all(Array.from({ length: 20 }, (_, index) => sleep(index * 50).then(() => send(index))));
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline && warmUp.some((id) => times.get(id)?.handled === undefined)) await sleep(20);
    times.clear();

    const total = POST_RATE * LATENCY_SECONDS;
    const t0 = performance.now() + 20;
    const sends: Promise<string>[] = [];
    for (let index = 0; index < total; index++) {
      const wait = t0 + (index * 1000) / POST_RATE - performance.now();
      if (wait > 1) await sleep(wait);
      sends.push(send(index));
    }
    const ids = await Promise.all(sends);
    const drain = performance.now() + 30_000;
    while (performance.now() < drain && ids.some((id) => times.get(id)?.handled === undefined)) await sleep(20);

    const claim: number[] = [];
    const publish: number[] = [];
    const fetch: number[] = [];
    const end: number[] = [];
    for (const id of ids) {
      const { committed, publishing, published, handled } = times.get(id) ?? {};
      if (committed === undefined || publishing === undefined || published === undefined || handled === undefined) continue;
      claim.push(Math.max(0, publishing - committed));
      publish.push(published - publishing);
      fetch.push(Math.max(0, handled - published));
      end.push(handled - committed);
    }
    const [c, p, f, e] = [summary(claim), summary(publish), summary(fetch), summary(end)];
    return {
      rep,
      transport,
      events: total,
      handled: e.n,
      'claim p50': c.p50,
      'claim p99': c.p99,
      'publish p50': p.p50,
      'publish p99': p.p99,
      'fetch p50': f.p50,
      'fetch p99': f.p99,
      'total p50': e.p50,
      'total p99': e.p99,
      'total max': e.max,
    };
  } finally {
    await relay.stop();
    await subscription.close();
    await closeBus(transport, opened);
  }
}

async function latencyPart(setup: Setup, db: BenchDatabase): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    for (const transport of ordered(rep)) {
      const row = await latencyRun(setup, db, rep, transport);
      rows.push(row);
      console.log(`  rep ${rep} ${transport}: commit → handled p50 ${row['total p50'].toFixed(1)} ms, p99 ${row['total p99'].toFixed(1)} ms`);
    }
  }
  return rows;
}

// ---- part 4: post → feed through the gateway -------------------------------------------------

interface VisibilityRow extends VisibilityFigures {
  transport: Transport;
  /** CPU over the round in % of one core, by process (the slice's, this process, redis-server, the Kafka JVM). */
  cpu: Record<string, number>;
  /** POST answered → the tap group had the event (relay + transport). */
  tapP50: number;
  tapP99: number;
  /** Tapped → first seen in the feed (feed-service's consumer and projection, the poll). */
  feedP50: number;
  feedP99: number;
}

/** A consumer group of this process on a slice's bus: when each post's `post.created` reached it. */
async function startTap(slice: Slice): Promise<{ seenAt: Map<string, number>; close(): Promise<void> }> {
  const bus = await createEventBus(loadConfig(baseEnv, slice.env), { service: 'bench-events-tap', logger });
  const seenAt = new Map<string, number>();
  const subscription = bus.subscribe({
    group: 'bench-tap',
    events: [postCreated],
    startFrom: 'new',
    concurrency: 16,
    handle: (envelope) => {
      if (!seenAt.has(envelope.data.postId)) seenAt.set(envelope.data.postId, performance.now());
    },
  });
  await subscription.ready;
  return {
    seenAt,
    close: async () => {
      await subscription.close();
      await bus.close();
    },
  };
}

/** CPU time so far (ms) of the slice's processes, this process, redis-server and the Kafka JVM, and the machine's. */
async function visibilityCpu(setup: Setup, slice: Slice): Promise<{ at: number; ms: Record<string, number>; machine: { busy: number; total: number } }> {
  const ms = await cpuSnapshot(slice, setup.redisPid);
  if (setup.broker?.pid) ms.kafka = await cpuMs(setup.broker.pid).catch(() => Number.NaN);
  return { at: performance.now(), ms, machine: await machineJiffies() };
}

async function visibilityPart(setup: Setup): Promise<VisibilityRow[]> {
  const unlimited = { GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '100000000', GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '100000000', GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0' };
  const slices = new Map<Transport, { slice: Slice; users: RegisteredUser[]; tap: Awaited<ReturnType<typeof startTap>> }>();
  try {
    for (const transport of TRANSPORTS) {
      const env = transport === 'kafka' ? { ...unlimited, EVENT_BUS: 'kafka', KAFKA_BROKERS: setup.broker!.bootstrap, KAFKA_PREFIX: `bench-events-${runId}-feed.` } : unlimited;
      const slice = await startSlice({ services: SOCIAL_SERVICES, env });
      const users = await Promise.all(Array.from({ length: USERS }, () => registerUser(slice.urls.gateway, 'bench')));
      await seedFeed(slice.urls.gateway, users);
      slices.set(transport, { slice, users, tap: await startTap(slice) });
      console.log(`  social slice on ${transport} ready`);
    }
    const rows: VisibilityRow[] = [];
    for (let round = 1; round <= POST_REPS; round++) {
      for (const transport of ordered(round)) {
        const { slice, users, tap } = slices.get(transport)!;
        const cpuBefore = await visibilityCpu(setup, slice);
        const { figures, answeredAt, firstSeenAt } = await postToFeedVisibility(slice, users, round, { rate: POST_RATE, seconds: POST_SECONDS, pollers: POLLERS });
        const cpuAfter = await visibilityCpu(setup, slice);
        const toTap: number[] = [];
        const tapToFeed: number[] = [];
        for (const [postId, answered] of answeredAt) {
          const tapped = tap.seenAt.get(postId);
          const seen = firstSeenAt.get(postId);
          if (tapped !== undefined) toTap.push(Math.max(0, tapped - answered));
          if (tapped !== undefined && seen !== undefined) tapToFeed.push(Math.max(0, seen - tapped));
        }
        const tapped = summary(toTap);
        const fed = summary(tapToFeed);
        const wallMs = cpuAfter.at - cpuBefore.at;
        const cpu = Object.fromEntries(Object.entries(cpuAfter.ms).map(([name, ms]) => [name, Math.round(((ms - (cpuBefore.ms[name] ?? Number.NaN)) / wallMs) * 100)]));
        const machine = ((cpuAfter.machine.busy - cpuBefore.machine.busy) / (cpuAfter.machine.total - cpuBefore.machine.total)) * 100 * os.cpus().length;
        cpu.machine = Math.round(machine);
        // Everything else: the other slice (idle but polling), Postgres, other work on the machine.
        cpu.other = Math.max(0, cpu.machine - Object.entries(cpu).reduce((sum, [name, value]) => (name === 'machine' ? sum : sum + value), 0));
        rows.push({ transport, ...figures, tapP50: tapped.p50, tapP99: tapped.p99, feedP50: fed.p50, feedP99: fed.p99, cpu });
        console.log(`  round ${round} ${transport}: visible p50 ${figures.visibleP50.toFixed(1)} ms, p99 ${figures.visibleP99.toFixed(1)} ms`);
      }
    }
    return rows;
  } finally {
    for (const { slice, tap } of slices.values()) {
      await tap.close().catch(() => undefined);
      await slice.stop();
    }
  }
}

// ---- the run ---------------------------------------------------------------------------------

interface BrokerMemory {
  when: string;
  'rss MiB': number;
  'peak MiB': number;
  'anon MiB': number;
  'files MiB': number;
}

/**
 * Subscribes a first consumer group and waits until it reads: the broker creates its offsets topic
 * (50 partitions) for the first group it coordinates, which no measurement should pay. Resolves with
 * how long that took.
 */
async function warmUpBroker(setup: Setup): Promise<number> {
  const opened = await openBus(setup, 'kafka');
  const started = performance.now();
  const subscription = opened.bus.subscribe({ group: 'bench-warm-up', events: [postCreated], handle: () => undefined });
  await subscription.ready;
  const ms = performance.now() - started;
  await subscription.close();
  await closeBus('kafka', opened);
  return ms;
}

async function startBroker(): Promise<LocalKafkaBroker> {
  const dataDir = path.join(repositoryRoot, '.data', 'bench-kafka');
  // The jars stay (fetched once), the data starts empty.
  await rm(path.join(dataDir, 'kafka', 'data'), { recursive: true, force: true });
  return LocalKafkaBroker.start({ dataDir, port: await freePort(), controllerPort: await freePort(), heapMb: KAFKA_HEAP_MB });
}

/** Runs the parts chosen (BENCH_EVENTS_PARTS) on the transports chosen and returns the figures; {@link printReport} prints them. */
export async function run(): Promise<Record<string, unknown>> {
  const started = performance.now();
  const setup: Setup = { broker: undefined, redisPid: await redisPid() };
  const memory: BrokerMemory[] = [];
  const readMemory = async (when: string) => {
    if (setup.broker?.pid) memory.push({ when, ...renameMemory(await residentMemoryMiB(setup.broker.pid)) });
  };
  // The broker runs in its own process group: make sure it does not outlive a crash of this one.
  const killBroker = () => {
    try {
      if (setup.broker?.pid) process.kill(setup.broker.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  const result: Record<string, unknown> = {
    setup: { rows: ROWS, reps: REPS, transports: TRANSPORTS, parts: PARTS, fewKeys: FEW_KEYS, batchSize: BATCH, writers: WRITERS, concurrency: CONCURRENCY, postRate: POST_RATE, postSeconds: POST_SECONDS, postReps: POST_REPS, pollers: POLLERS, kafkaHeapMb: KAFKA_HEAP_MB },
  };
  // The figures assume an otherwise idle machine: say how busy it was before the run.
  const idleBefore = await machineJiffies();
  await sleep(3_000);
  const idleAfter = await machineJiffies();
  result.machineBusyBeforePercent = Math.round(((idleAfter.busy - idleBefore.busy) / (idleAfter.total - idleBefore.total)) * 100 * os.cpus().length);
  console.log(`machine busy before the run: ${String(result.machineBusyBeforePercent)} % of one core over 3 s (the machine has ${os.cpus().length * 100})`);
  try {
    if (TRANSPORTS.includes('kafka')) {
      process.on('exit', killBroker);
      const brokerStarted = performance.now();
      setup.broker = await startBroker();
      console.log(`Kafka broker ready at ${setup.broker.bootstrap} in ${Math.round(performance.now() - brokerStarted)} ms (heap ${KAFKA_HEAP_MB} MB)`);
      await sleep(5_000);
      await readMemory('idle after start');
      const firstGroupMs = await warmUpBroker(setup);
      console.log(`first consumer group reading after ${Math.round(firstGroupMs)} ms (the broker creates its offsets topic; a NOT_COORDINATOR warning meanwhile is expected)`);
      result.firstGroupMs = Math.round(firstGroupMs);
    }
    if (PARTS.includes('relay') || PARTS.includes('consumer') || PARTS.includes('latency')) {
      const server = await createTestDatabase();
      const database = await openDatabase({ service: 'posts-service', url: server.url, dataDir: 'memory://', migrationsFolder: POSTS_MIGRATIONS, schema, logger });
      try {
        if (PARTS.includes('relay')) {
          console.log(`\n--- relay: ${ROWS} rows per run, batch ${BATCH}, ${REPS} reps`);
          result.relay = await relayPart(setup, database.db);
        }
        if (PARTS.includes('consumer')) {
          console.log(`\n--- consumer group: ${ROWS} events, concurrency ${CONCURRENCY}, ${REPS} reps`);
          result.consumer = await consumerPart(setup);
        }
        if (PARTS.includes('latency')) {
          console.log(`\n--- one event's way: ${POST_RATE} events/s for ${LATENCY_SECONDS} s, relay and consumer in this process, ${REPS} reps`);
          result.eventLatency = await latencyPart(setup, database.db);
        }
      } finally {
        await database.close();
        await server.drop();
      }
      await readMemory('after the relay, consumer and latency runs');
    }
    if (PARTS.includes('visibility')) {
      console.log(`\n--- post → feed: ${POST_RATE} posts/s for ${POST_SECONDS} s × ${POST_REPS} rounds per transport`);
      result.postToFeed = await visibilityPart(setup);
      await readMemory('after the post → feed runs');
    }
    result.brokerMemory = memory;
    result.seconds = Math.round((performance.now() - started) / 1000);
    return result;
  } finally {
    await setup.broker?.stop();
    process.off('exit', killBroker);
    if (setup.broker) await rm(path.join(repositoryRoot, '.data', 'bench-kafka', 'kafka', 'data'), { recursive: true, force: true });
  }
}

function renameMemory(memory: { rss: number; peak: number; anon: number; file: number }): Omit<BrokerMemory, 'when'> {
  return { 'rss MiB': memory.rss, 'peak MiB': memory.peak, 'anon MiB': memory.anon, 'files MiB': memory.file };
}

// ---- the report ------------------------------------------------------------------------------

interface Spread {
  min: number;
  median: number;
  max: number;
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0] ?? Number.NaN, median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** `min–max (median)`. */
const range = (s: Spread, digits = 0) => `${s.min.toFixed(digits)}–${s.max.toFixed(digits)} (${s.median.toFixed(digits)})`;
/** {@link range} of the values present, or nothing. */
const rangeOf = (values: (number | undefined)[]) => {
  const present = values.filter((value): value is number => value !== undefined);
  return present.length === 0 ? '' : range(spread(present));
};

/** Prints the tables of a {@link run} result. */
export function printReport(result: Record<string, unknown>): void {
  const relay = result.relay as RelayRow[] | undefined;
  if (relay) {
    console.log(`\nRelay throughput: ${ROWS} outbox rows per run (Postgres server), OutboxRelay batch ${BATCH}; CPU in % of one core (machine: 100 × cores; other = busy time of processes outside the benchmark).`);
    printTable(relay.map((row) => ({ ...row })));
    const groups = new Map<string, RelayRow[]>();
    for (const row of relay) {
      const key = `${row.keys}\u0000${row.mode}\u0000${row.transport}`;
      groups.set(key, [...(groups.get(key) ?? []), row]);
    }
    console.log(`\nRelay throughput over ${REPS} reps, min–max (median) (goal for "relay": ≥ ${RELAY_GOAL_PER_S} rows/s):`);
    printTable(
      [...groups.values()].map((rows) => {
        const rate = spread(rows.map((row) => row['rows/s']));
        return {
          keys: rows[0]!.keys,
          mode: rows[0]!.mode,
          transport: rows[0]!.transport,
          'rows/s': range(rate),
          'bench %': rangeOf(rows.map((row) => row['bench %'])),
          'broker %': rangeOf(rows.map((row) => row['broker %'])),
          'pg %': rangeOf(rows.map((row) => row['pg %'])),
          'machine %': rangeOf(rows.map((row) => row['machine %'])),
          'other %': rangeOf(rows.map((row) => row['other %'])),
          goal: rows[0]!.mode === 'relay' ? (rate.max >= RELAY_GOAL_PER_S ? (rate.min >= RELAY_GOAL_PER_S ? 'met' : 'met in some reps') : 'MISSED') : '',
        };
      }),
    );
  }
  const consumer = result.consumer as ConsumerRow[] | undefined;
  if (consumer) {
    console.log(`\nConsumer group: ${ROWS} events published first, one subscriber, concurrency ${CONCURRENCY}, no-op handler.`);
    printTable(consumer.map((row) => ({ ...row })));
    printTable(
      TRANSPORTS.map((transport) => {
        const rows = consumer.filter((row) => row.transport === transport);
        return { transport, 'events/s': range(spread(rows.map((row) => row['events/s']))), 'steady/s': range(spread(rows.map((row) => row['steady/s']))), 'start ms': range(spread(rows.map((row) => row['start ms']))) };
      }),
    );
  }
  const latency = result.eventLatency as LatencyRow[] | undefined;
  if (latency) {
    console.log(
      `\nOne event's way at ${POST_RATE} events/s, in this process (ms): claim = commit → the relay hands it to the bus (wake, claim, the pass in progress); ` +
        'publish = the bus answering; fetch = answered → a consumer group handled it; total = commit → handled.',
    );
    printTable(latency.map((row) => ({ ...row })));
    printTable(
      TRANSPORTS.map((transport) => {
        const rows = latency.filter((row) => row.transport === transport);
        const column = (name: keyof LatencyRow) => range(spread(rows.map((row) => row[name] as number)), 1);
        return { transport, 'claim p99': column('claim p99'), 'publish p99': column('publish p99'), 'fetch p99': column('fetch p99'), 'total p50': column('total p50'), 'total p99': column('total p99') };
      }),
    );
  }
  const visibility = result.postToFeed as VisibilityRow[] | undefined;
  if (visibility) {
    console.log(`\nPost → visible in the feed through the gateway, ${POST_RATE} posts/s for ${POST_SECONDS} s per round (ms). tap = POST answered → a fresh group of this process had the event; feed = tapped → seen by the pollers.`);
    printTable(visibility.map(({ cpu: _cpu, ...row }) => ({ ...row })));
    console.log('CPU over each round, % of one core:');
    printTable(visibility.map((row) => ({ transport: row.transport, round: row.round, ...row.cpu })));
    printTable(
      TRANSPORTS.map((transport) => {
        const rows = visibility.filter((row) => row.transport === transport);
        const p99 = spread(rows.map((row) => row.visibleP99));
        return {
          transport,
          'visible p50': range(spread(rows.map((row) => row.visibleP50)), 1),
          'visible p99': range(p99, 1),
          'tap p99': range(spread(rows.map((row) => row.tapP99)), 1),
          'feed p99': range(spread(rows.map((row) => row.feedP99)), 1),
          goal: transport === 'kafka' ? (p99.max < KAFKA_VISIBLE_P99_GOAL_MS ? 'met' : p99.min < KAFKA_VISIBLE_P99_GOAL_MS ? 'met in some rounds' : 'MISSED') + ` (p99 < ${KAFKA_VISIBLE_P99_GOAL_MS} ms)` : '',
        };
      }),
    );
  }
  const memory = result.brokerMemory as BrokerMemory[] | undefined;
  if (memory && memory.length > 0) {
    console.log(`\nKafka broker memory (JVM, -Xmx${KAFKA_HEAP_MB}m; VmRSS now, VmHWM peak, RSS split into anonymous (heap, JVM) and mapped files (jars, log indexes)):`);
    printTable(memory.map((row) => ({ ...row })));
  }
  if (typeof result.seconds === 'number') console.log(`\nevents benchmark: ${result.seconds} s`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    printReport(await run());
  } finally {
    await stopAll();
  }
  process.exit(0);
}
