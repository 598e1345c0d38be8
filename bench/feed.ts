/**
 * Feed benchmarks on the social core as real processes (auth, profile, posts, feed, gateway from
 * `startSystem`), public HTTP APIs only:
 *
 * 1. Feed read: `GET /feed?limit=20` at concurrency 64 (autocannon, closed loop, keep-alive), through
 *    the gateway and directly on feed-service, alternating in rounds in the same run so drift hits
 *    both. Per round: requests/s, p50, p99, and the CPU time per request of each process (gateway,
 *    feed-service, redis-server, the generator), which says where a 2-core machine's time goes.
 *    Goals: gateway p99 < 10 ms, gateway ≥ 0.6× direct. Then both once more at a fixed offered rate
 *    (PACED_RATE) below saturation, for the latency the gateway adds when CPU is not the limit.
 * 2. Post → feed visibility: `POST /posts` through the gateway at RATE posts/s, open loop (post i is
 *    sent at t0 + i/RATE whatever the answers), while POLLERS loops read `GET /feed?limit=100` through
 *    the gateway back to back and note when each post id first appears. Visibility = first seen −
 *    the POST's response time (so the figure is the asynchronous part: outbox → stream → projection →
 *    readable; resolution one poll round trip, reported). Goal: p99 < 100 ms at 100 posts/s.
 *
 * `npx tsx bench/feed.ts` prints tables; `run()` returns the figures.
 * Env: BENCH_FEED_SECONDS (10), BENCH_FEED_REPS (3), BENCH_FEED_CONNECTIONS (64), BENCH_POST_RATE (100),
 * BENCH_POST_SECONDS (20), BENCH_POST_REPS (2), BENCH_POLLERS (2), BENCH_FEED_PACED_RATE (2000), REDIS_BROKER_URL.
 */
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { SOCIAL_SERVICES } from '@civildiy/common/testing';
import { postToFeedVisibility, seedFeed } from './post-visibility.ts';
import { cpuSnapshot, registerUser, printTable, redisPid, startSlice, stopAll, type Slice } from './system.ts';

const FEED_SECONDS = Number(process.env.BENCH_FEED_SECONDS ?? 10);
const FEED_REPS = Number(process.env.BENCH_FEED_REPS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_FEED_CONNECTIONS ?? 64);
const POST_RATE = Number(process.env.BENCH_POST_RATE ?? 100);
const POST_SECONDS = Number(process.env.BENCH_POST_SECONDS ?? 20);
const POST_REPS = Number(process.env.BENCH_POST_REPS ?? 2);
const POLLERS = Number(process.env.BENCH_POLLERS ?? 2);
const PACED_RATE = Number(process.env.BENCH_FEED_PACED_RATE ?? 2_000);
const USERS = 10;

interface LoadFigures {
  target: 'gateway' | 'direct';
  round: number;
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** CPU time per request (µs) of the gateway, feed-service, Redis and the load generator (this process). */
  cpuUsGateway: number;
  cpuUsFeed: number;
  cpuUsRedis: number;
  cpuUsGenerator: number;
}

async function load(system: Slice, redis: number | undefined, url: string, overallRate?: number): Promise<Omit<LoadFigures, 'target' | 'round'>> {
  const before = await cpuSnapshot(system, redis);
  const result = await autocannon({ url, connections: CONNECTIONS, duration: FEED_SECONDS, pipelining: 1, ...(overallRate ? { overallRate } : {}) });
  const after = await cpuSnapshot(system, redis);
  const perRequestUs = (name: string) => Number((((after[name] ?? Number.NaN) - (before[name] ?? Number.NaN)) * 1000) / result.requests.total).toFixed(0);
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    cpuUsGateway: Number(perRequestUs('gateway')),
    cpuUsFeed: Number(perRequestUs('feed-service')),
    cpuUsRedis: Number(perRequestUs('redis-server')),
    cpuUsGenerator: Number(perRequestUs('generator (bench)')),
  };
}

async function feedRead(system: Slice) {
  const redis = await redisPid();
  const gatewayUrl = `${system.urls.gateway}/feed?limit=20`;
  const directUrl = `${system.urls.feed}/feed?limit=20`;
  // Warm-up: JIT, connection pools, the JWKS is not involved (public route, no token).
  await autocannon({ url: gatewayUrl, connections: CONNECTIONS, duration: 2 });
  await autocannon({ url: directUrl, connections: CONNECTIONS, duration: 2 });
  const rows: LoadFigures[] = [];
  for (let round = 1; round <= FEED_REPS; round++) {
    // Alternate which goes first, so neither always runs on a warmer machine.
    const order: LoadFigures['target'][] = round % 2 === 1 ? ['gateway', 'direct'] : ['direct', 'gateway'];
    for (const target of order) rows.push({ target, round, ...(await load(system, redis, target === 'gateway' ? gatewayUrl : directUrl)) });
  }
  printTable(rows.map((row) => ({ ...row, rps: Math.round(row.rps) })));
  const ratios = Array.from({ length: FEED_REPS }, (_, index) => {
    const round = index + 1;
    const gateway = rows.find((row) => row.round === round && row.target === 'gateway')!;
    const direct = rows.find((row) => row.round === round && row.target === 'direct')!;
    return gateway.rps / direct.rps;
  });
  // The same 64 connections at a fixed offered rate below saturation: the latency the gateway adds
  // when the machine is not the bottleneck (autocannon corrects for coordinated omission here).
  const paced: (LoadFigures & { offered: number })[] = [];
  for (const target of ['gateway', 'direct'] as const) {
    paced.push({ target, round: 1, offered: PACED_RATE, ...(await load(system, redis, target === 'gateway' ? gatewayUrl : directUrl, PACED_RATE)) });
  }
  console.log(`\nthe same at a fixed ${PACED_RATE} req/s offered:`);
  printTable(paced.map((row) => ({ ...row, rps: Math.round(row.rps) })));
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const gatewayRows = rows.filter((row) => row.target === 'gateway');
  const directRows = rows.filter((row) => row.target === 'direct');
  const figures = {
    connections: CONNECTIONS,
    seconds: FEED_SECONDS,
    gateway: { rps: median(gatewayRows.map((row) => row.rps)), p50: median(gatewayRows.map((row) => row.p50)), p99: median(gatewayRows.map((row) => row.p99)) },
    direct: { rps: median(directRows.map((row) => row.rps)), p50: median(directRows.map((row) => row.p50)), p99: median(directRows.map((row) => row.p99)) },
    ratioPerRound: ratios.map((ratio) => Number(ratio.toFixed(3))),
    ratioMedian: Number(median(ratios).toFixed(3)),
    rounds: rows,
    paced,
  };
  console.log(
    `feed read, median of ${FEED_REPS}: gateway ${Math.round(figures.gateway.rps)} req/s p50 ${figures.gateway.p50} ms p99 ${figures.gateway.p99} ms; ` +
      `direct ${Math.round(figures.direct.rps)} req/s p50 ${figures.direct.p50} ms p99 ${figures.direct.p99} ms; ratio ${figures.ratioMedian} (per round ${figures.ratioPerRound.join(', ')})`,
  );
  return figures;
}

export async function run(): Promise<Record<string, unknown>> {
  const system = await startSlice({
    services: SOCIAL_SERVICES,
    env: { GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '100000000', GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '100000000', GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0' },
  });
  try {
    const users = await Promise.all(Array.from({ length: USERS }, () => registerUser(system.urls.gateway, 'bench')));
    // A full global page to read: 200 posts, then wait until the feed shows 20.
    await seedFeed(system.urls.gateway, users);
    console.log(`\n--- feed read: GET /feed?limit=20, ${CONNECTIONS} connections, ${FEED_SECONDS} s × ${FEED_REPS} rounds per target`);
    const read = await feedRead(system);

    console.log(`\n--- post → feed visibility: ${POST_RATE} posts/s for ${POST_SECONDS} s × ${POST_REPS}, ${POLLERS} pollers on GET /feed?limit=100`);
    const rounds = [];
    for (let round = 1; round <= POST_REPS; round++) rounds.push((await postToFeedVisibility(system, users, round, { rate: POST_RATE, seconds: POST_SECONDS, pollers: POLLERS })).figures);
    printTable(rounds);
    return { feedRead: read, postToFeed: rounds };
  } finally {
    await system.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await run();
  } finally {
    await stopAll();
  }
  process.exit(0);
}
