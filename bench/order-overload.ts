/**
 * The order-flow benchmark's overload step: `POST /orders` through the gateway at a rate the slice
 * cannot sustain (by default twice the highest rate that kept up), open loop, each request with its
 * own `Idempotency-Key`. It measures what a client sees when the system is past its limit:
 *  - answered latency p50/p99 (every answer) and of the refusals alone (503s);
 *  - the share of 201, 503 (refused: service.overloaded or request.deadline_exceeded), 504 and other;
 *  - orders placed for requests not answered 201: after the step drains, every such request is
 *    retried with the same key; a `200` replay means the order had been placed although its client
 *    was told otherwise. Acceptable only after a 504 (the gateway gave up while the service worked,
 *    and the retry resolves it); after a 503 it means the service refused yet did the work.
 * Goals (issue 9): answered p99 < 2 s, every refusal answered within 1 s, no order placed whose
 * client got an error other than a 504.
 *
 * Also printed: latency by layer (the gateway's and order-service's own histograms) and event-loop
 * delay, to show where time goes. Env: BENCH_OVERLOAD_TARGET=direct sends the orders to
 * order-service itself instead of the gateway; BENCH_OVERLOAD_DUMP=<file> writes one line per
 * request (ms since start, latency, status, order createdAt − send time).
 */
import { performance } from 'node:perf_hooks';
import { call, registerUser, sleep, summary, type Slice } from './system.ts';

interface Attempt {
  key: string;
  /** Wall clock at send and the order's `createdAt` (when its transaction ran), for the dump. */
  sentWall?: number;
  createdAt?: number;
  token: string;
  sku: string;
  sentAt: number;
  status?: number;
  code?: string;
  ms?: number;
  retryStatus?: number;
}

export interface OverloadResult {
  rate: number;
  seconds: number;
  sent: number;
  byStatus: Record<string, number>;
  byCode: Record<string, number>;
  share503: number;
  answeredMs: ReturnType<typeof summary>;
  acceptedMs: ReturnType<typeof summary>;
  refusedMs: ReturnType<typeof summary>;
  /** Requests not answered 201 whose retry with the same key replayed an order (placed anyway), by first answer. */
  placedDespiteError: Record<string, number>;
  /** Retries that found no order and placed one now (201), by first answer: the key resolves either way. */
  placedOnRetry: Record<string, number>;
  goals: { answeredP99Under2s: boolean; refusalsWithin1s: boolean; noOrderBehindNon504Error: boolean };
  /**
   * Event-loop delay over the step (prom-client's monitor, reset by each scrape), ms: what a shedder
   * keyed on event-loop delay (@fastify/under-pressure) would have seen.
   */
  eventLoopDelayMs: Record<string, { p99: number; max: number }>;
  /** Latency by layer from the processes' histograms (bucket bounds, ms). */
  layers: Record<string, { n: number; p50: string; p99: string }>;
}

/** Cumulative bucket counts (`le` → count) of the series of histogram `name` whose labels match. */
function buckets(text: string, name: string, labels: RegExp): Map<number, number> {
  const counts = new Map<number, number>();
  for (const match of text.matchAll(new RegExp(`^${name}_bucket\\{([^}]*)\\}\\s+(\\S+)`, 'gm'))) {
    if (!labels.test(match[1]!)) continue;
    const le = /le="([^"]+)"/.exec(match[1]!)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    counts.set(bound, (counts.get(bound) ?? 0) + Number(match[2]));
  }
  return counts;
}

/** p50/p99 (bucket upper bounds, ms) of what a histogram observed between two scrapes. */
function histogramDelta(before: Map<number, number>, after: Map<number, number>): { n: number; p50: string; p99: string } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const delta = bounds.map((bound) => (after.get(bound) ?? 0) - (before.get(bound) ?? 0));
  const n = delta[delta.length - 1] ?? 0;
  const quantile = (q: number) => {
    const index = delta.findIndex((count) => count >= q * n);
    const bound = bounds[index];
    return bound === undefined ? 'n/a' : bound === Number.POSITIVE_INFINITY ? `> ${bounds[index - 1]! * 1000}` : `≤ ${bound * 1000}`;
  };
  return { n, p50: quantile(0.5), p99: quantile(0.99) };
}

/** What the gateway and order-service report at one moment: one scrape of each (a scrape resets the event-loop monitor). */
interface Snapshot {
  /** Histogram buckets of the layers a POST /orders crosses. */
  layers: Record<string, Map<number, number>>;
  /** `nodejs_eventloop_lag_p99_seconds` and `_max_seconds` since the previous scrape, in ms. */
  eventLoopDelayMs: Record<string, { p99: number; max: number }>;
}

async function snapshot(slice: Slice): Promise<Snapshot> {
  const [gateway, orders] = await Promise.all(
    [slice.metricsUrls.gateway, slice.metricsUrls['order-service']].map((url) =>
      fetch(url, { signal: AbortSignal.timeout(10_000) })
        .then((r) => r.text())
        .catch(() => ''),
    ),
  );
  const delay = (text: string) => {
    const read = (metric: string) => Number(new RegExp(`^${metric}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
    return { p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
  };
  return {
    layers: {
      'gateway: whole request': buckets(gateway!, 'civildiy_http_request_duration_seconds', /method="POST".*route="\/orders"/),
      'gateway → order-service headers': buckets(gateway!, 'civildiy_gateway_upstream_duration_seconds', /service="order-service"/),
      'order-service: whole request': buckets(orders!, 'civildiy_http_request_duration_seconds', /method="POST".*route="\/orders"/),
    },
    eventLoopDelayMs: { 'order-service': delay(orders!), gateway: delay(gateway!) },
  };
}

const count = (values: string[]) => values.reduce<Record<string, number>>((acc, v) => ((acc[v] = (acc[v] ?? 0) + 1), acc), {});

/** Runs the overload step against the slice's gateway (which must be started, with rate limits off). */
export async function overloadStep(slice: Slice, rate: number, seconds: number, users = 20): Promise<OverloadResult> {
  const target = process.env.BENCH_OVERLOAD_TARGET === 'direct' ? slice.urls.orders : slice.urls.gateway;
  const gateway = slice.urls.gateway;
  const people = await Promise.all(Array.from({ length: users }, () => registerUser(gateway, 'overload')));
  const catalog = (await call<{ items: { sku: string; priceCents: number }[] }>(`${gateway}/catalog`)).body.items.filter((i) => i.priceCents <= 200_000);
  const tag = Math.random().toString(36).slice(2, 8);
  const attempts: Attempt[] = [];
  const inFlight: Promise<void>[] = [];
  const total = rate * seconds;
  const before = await snapshot(slice);
  const t0 = performance.now() + 20;
  let next = 0;
  const post = (attempt: Attempt) =>
    call(`${target}/orders`, { token: attempt.token, body: { lines: [{ sku: attempt.sku, quantity: 1 }] }, headers: { 'idempotency-key': attempt.key } });
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && t0 + (next * 1000) / rate <= now) {
        const i = next++;
        const attempt: Attempt = { key: `overload-${tag}-${i}`, token: people[i % users]!.token, sku: catalog[i % catalog.length]!.sku, sentAt: performance.now() };
        attempt.sentWall = Date.now();
        attempts.push(attempt);
        inFlight.push(
          post(attempt).then(
            (response) => {
              attempt.ms = performance.now() - attempt.sentAt;
              attempt.status = response.status;
              attempt.code = (response.body as { error?: { code?: string } } | undefined)?.error?.code ?? String(response.status);
              const createdAt = (response.body as { createdAt?: string } | undefined)?.createdAt;
              if (createdAt) attempt.createdAt = Date.parse(createdAt);
            },
            (error: unknown) => {
              attempt.ms = performance.now() - attempt.sentAt;
              attempt.status = 0;
              attempt.code = `client: ${String(error).slice(0, 80)}`;
            },
          ),
        );
      }
      if (next >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  await Promise.all(inFlight);
  if (process.env.BENCH_OVERLOAD_DUMP) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(process.env.BENCH_OVERLOAD_DUMP, attempts.map((a) => `${(a.sentAt - t0).toFixed(1)} ${a.ms?.toFixed(1)} ${a.status} ${a.createdAt === undefined ? '-' : a.createdAt - a.sentWall!}`).join('\n'));
  }
  const after = await snapshot(slice);
  const layers = Object.fromEntries(Object.keys(after.layers).map((name) => [name, histogramDelta(before.layers[name]!, after.layers[name]!)]));

  // Let the accepted work drain, then ask again for every request that was not a 201.
  await sleep(5_000);
  const failed = attempts.filter((a) => a.status !== 201);
  for (let i = 0; i < failed.length; i += 10) {
    await Promise.all(
      failed.slice(i, i + 10).map(async (attempt) => {
        for (let tries = 0; tries < 20; tries++) {
          const response = await post(attempt);
          attempt.retryStatus = response.status;
          if (response.status !== 503) return;
          await sleep(Number(response.headers.get('retry-after') ?? 1) * 1000);
        }
      }),
    );
  }

  const answered = attempts.filter((a) => a.status !== 0);
  const refused = attempts.filter((a) => a.status === 503);
  const answeredMs = summary(answered.map((a) => a.ms!));
  const refusedMs = summary(refused.map((a) => a.ms!));
  const placedDespiteError = count(failed.filter((a) => a.retryStatus === 200).map((a) => String(a.status)));
  return {
    rate,
    seconds,
    sent: attempts.length,
    byStatus: count(attempts.map((a) => String(a.status))),
    byCode: count(attempts.filter((a) => a.status !== 201).map((a) => a.code!)),
    share503: refused.length / attempts.length,
    answeredMs,
    acceptedMs: summary(attempts.filter((a) => a.status === 201).map((a) => a.ms!)),
    refusedMs,
    placedDespiteError,
    placedOnRetry: count(failed.filter((a) => a.retryStatus === 201).map((a) => String(a.status))),
    eventLoopDelayMs: after.eventLoopDelayMs,
    layers,
    goals: {
      answeredP99Under2s: answeredMs.p99 < 2_000,
      refusalsWithin1s: refused.every((a) => a.ms! <= 1_000),
      noOrderBehindNon504Error: Object.keys(placedDespiteError).every((status) => status === '504'),
    },
  };
}
