/**
 * Order-flow benchmark: the order slice as real processes (see `system.ts`), driven over HTTP with
 * `POST /orders` at fixed offered loads (open loop: request i is sent at t0 + i/rate whatever the
 * answers, so a slow system cannot slow the generator down and hide its own latency).
 *
 * Per step: USERS fresh users are registered (and their welcome e-mail awaited, so
 * notification-service knows them), then RATE orders/s for SECONDS, then the run waits until every
 * accepted order's confirmation e-mail is delivered (or DRAIN_TIMEOUT). Measured, public APIs only:
 *  - POST latency and 201s per second;
 *  - POST → delivered: `deliveredAt` that the messaging provider stamps on the order_confirmed
 *    e-mail (same host, same clock, ms resolution) minus the wall time the POST was sent. The e-mail
 *    body carries the full order id (the subject only its first 8 digits, not unique for UUIDv7).
 *    A poller also reads the provider's global `GET /v1/messages?limit=` every POLL_MS to see
 *    deliveries as they happen (first-seen times, resolution POLL_MS + one round trip) and the
 *    backlog; the exact `deliveredAt`s are read per user after the step;
 *  - where the time goes, from public reads: order `createdAt` (order-service), payment `createdAt`
 *    (payments provider, called by the worker), order `updatedAt` (= the worker's `processedAt`),
 *    e-mail `deliveredAt`;
 *  - CPU time of every process of the slice, this generator and redis-server over the step.
 * Steps run in rounds (every rate once, REPS rounds) so drift (growing tables) hits every rate.
 *
 * `npx tsx bench/order-flow.ts` prints tables; `run()` returns the figures.
 * Last, the overload step (`order-overload.ts`): through the gateway at twice the highest rate that
 * kept up (BENCH_OVERLOAD_RATE to choose), measuring refusals, latency and orders placed for
 * clients that got an error.
 *
 * Env: BENCH_RATES (25,50,75,100,200), BENCH_SECONDS (20), BENCH_REPS (2), BENCH_USERS (20),
 * BENCH_WORKER_CONCURRENCY (50), BENCH_NOTIFICATION_CONCURRENCY (service default 10),
 * BENCH_POLL_MS (50), BENCH_DRAIN_TIMEOUT_MS (120000), REDIS_BROKER_URL.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { overloadStep, type OverloadResult } from './order-overload.ts';
import { SERVICES, call, cpuSnapshot, machineJiffies, printTable, redisPid, sleep, startSlice, stopAll, summary, type Slice } from './system.ts';

const RATES = (process.env.BENCH_RATES ?? '25,50,75,100,200').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const REPS = Number(process.env.BENCH_REPS ?? 2);
const USERS = Number(process.env.BENCH_USERS ?? 20);
const WORKER_CONCURRENCY = process.env.BENCH_WORKER_CONCURRENCY ?? '50';
const NOTIFICATION_CONCURRENCY = process.env.BENCH_NOTIFICATION_CONCURRENCY;
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 50);
const DRAIN_TIMEOUT_MS = Number(process.env.BENCH_DRAIN_TIMEOUT_MS ?? 120_000);
/**
 * "Kept up": at the end of the send window at most one second's worth of orders is not yet
 * delivered (in flight, not a growing queue), and all are delivered within this long after.
 */
const KEPT_UP_DRAIN_MS = 5_000;

interface User {
  id: string;
  email: string;
  token: string;
}

interface Sent {
  userIndex: number;
  scheduledAt: number;
  sentAt: number;
  status?: number;
  postMs?: number;
  orderId?: string;
  error?: string;
}

interface Message {
  id: string;
  to: string;
  subject?: string;
  body: string;
  deliveredAt: string;
}

const ORDER_ID = /for order ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/;

function orderMessage(m: Message): { orderId: string; confirmed: boolean } | undefined {
  if (!m.subject?.startsWith('Your order ')) return undefined;
  const match = ORDER_ID.exec(m.body);
  return match ? { orderId: match[1]!, confirmed: m.subject.endsWith('is confirmed') } : undefined;
}

/** Where the backlog sits, from the services' own `/metrics` gauges (sum over matching series). */
async function backlogGauges(slice: Slice): Promise<Record<string, number>> {
  const scrape = (url: string) =>
    fetch(url, { signal: AbortSignal.timeout(10_000) })
      .then((r) => r.text())
      .catch(() => '');
  const [orders, worker, notifications] = await Promise.all([
    scrape(slice.metricsUrls['order-service']),
    scrape(slice.metricsUrls.worker),
    scrape(slice.metricsUrls['notification-service']),
  ]);
  const sum = (text: string, name: string, labels: RegExp = /.*/) => {
    let total = Number.NaN;
    for (const match of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})?\\s+(\\S+)`, 'gm'))) {
      if (!labels.test(match[1] ?? '')) continue;
      total = (Number.isNaN(total) ? 0 : total) + Number(match[2]);
    }
    return total;
  };
  const waitingOrActive = /state="(waiting|active|delayed|prioritized)"/;
  return {
    'order-svc outbox': sum(orders, 'civildiy_outbox_pending'),
    'orders queue': sum(worker, 'civildiy_task_queue_depth', waitingOrActive),
    'order-svc event lag': sum(orders, 'civildiy_event_consumer_lag') + sum(orders, 'civildiy_event_consumer_pending'),
    'notif queue': sum(notifications, 'civildiy_task_queue_depth', waitingOrActive),
  };
}

async function registerUsers(slice: Slice, count: number): Promise<User[]> {
  const tag = Math.random().toString(36).slice(2, 8);
  const users: User[] = [];
  for (let i = 0; i < count; i += 5) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(5, count - i) }, async (_, j) => {
        const name = `bench${tag}${String(i + j).padStart(3, '0')}`;
        const email = `${name}@example.com`;
        const response = await call(`${slice.urls.auth}/auth/register`, { body: { email, username: name, password: 'correct horse battery' } });
        if (response.status !== 201) throw new Error(`register: ${response.status} ${JSON.stringify(response.body)}`);
        return { id: response.body.user.id as string, email, token: response.body.accessToken as string };
      }),
    );
    users.push(...batch);
  }
  // Wait for every welcome e-mail: then notification-service has each user's contact, and an
  // order notification never waits for `user.registered`.
  const deadline = Date.now() + 60_000;
  for (const user of users) {
    while ((await call(`${slice.urls.messaging}/v1/messages?to=${encodeURIComponent(user.email)}&limit=5`)).body.items.length === 0) {
      if (Date.now() > deadline) throw new Error(`no welcome e-mail for ${user.email}`);
      await sleep(50);
    }
  }
  return users;
}

/** Watches the provider's global message list and records when each order e-mail is first seen. */
class DeliveryPoller {
  readonly firstSeen = new Map<string, number>();
  readonly rejected = new Set<string>();
  private readonly seenMessages = new Set<string>();
  private limit = 50;
  private running = true;
  private loop?: Promise<void>;
  polls = 0;
  pollMsTotal = 0;
  overflows = 0;

  constructor(
    private readonly slice: Slice,
    private readonly emails: Set<string>,
  ) {}

  start(): void {
    this.loop = (async () => {
      while (this.running) {
        const started = performance.now();
        await this.poll().catch(() => undefined);
        const took = performance.now() - started;
        this.polls += 1;
        this.pollMsTotal += took;
        await sleep(Math.max(0, POLL_MS - took));
      }
    })();
  }

  private async poll(): Promise<void> {
    const { body } = await call<{ items: Message[] }>(`${this.slice.urls.messaging}/v1/messages?limit=${this.limit}`);
    const now = Date.now();
    let fresh = 0;
    for (const m of body.items) {
      if (this.seenMessages.has(m.id)) continue;
      this.seenMessages.add(m.id);
      fresh += 1;
      if (!this.emails.has(m.to.toLowerCase())) continue;
      const order = orderMessage(m);
      if (!order) continue;
      if (!this.firstSeen.has(order.orderId)) this.firstSeen.set(order.orderId, now);
      if (!order.confirmed) this.rejected.add(order.orderId);
    }
    // Every message new: some may have been missed (the list is newest first). Widen and read again.
    if (fresh === body.items.length && body.items.length === this.limit && this.limit < 500) {
      this.overflows += 1;
      this.limit = 500;
      return this.poll();
    }
    this.limit = Math.min(500, Math.max(50, fresh * 3));
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Exact per-order timestamps, read per user after the step. */
async function collectTimestamps(slice: Slice, users: User[]) {
  const delivered = new Map<string, number>();
  const rejected = new Set<string>();
  const paidAt = new Map<string, number>();
  const created = new Map<string, number>();
  const processed = new Map<string, number>();
  for (const user of users) {
    const messages = (await call<{ items: Message[] }>(`${slice.urls.messaging}/v1/messages?to=${encodeURIComponent(user.email)}&limit=500`)).body.items;
    for (const m of messages) {
      const order = orderMessage(m);
      if (!order) continue;
      delivered.set(order.orderId, Date.parse(m.deliveredAt));
      if (!order.confirmed) rejected.add(order.orderId);
    }
    const payments = (await call<{ items: { reference: string; createdAt: string; status: string }[] }>(`${slice.urls.payments}/v1/payments?customerId=${user.id}&limit=500`)).body.items;
    for (const p of payments) if (p.status === 'succeeded') paidAt.set(p.reference, Date.parse(p.createdAt));
    let cursor: string | undefined;
    do {
      const page = (
        await call<{ items: { id: string; status: string; createdAt: string; updatedAt: string }[]; nextCursor: string | null }>(
          `${slice.urls.orders}/orders?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
          { token: user.token },
        )
      ).body;
      for (const o of page.items) {
        created.set(o.id, Date.parse(o.createdAt));
        if (o.status !== 'pending') processed.set(o.id, Date.parse(o.updatedAt));
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
  }
  return { delivered, rejected, paidAt, created, processed };
}

interface StepResult {
  rate: number;
  rep: number;
  seconds: number;
  sent: number;
  accepted: number;
  errors: number;
  errorSamples: string[];
  acceptedPerSecond: number;
  acceptedPerSecondMin: number;
  generatorLagMaxMs: number;
  postMs: ReturnType<typeof summary>;
  deliveredMs: ReturnType<typeof summary>;
  firstSeenMs: ReturnType<typeof summary>;
  stages: Record<string, ReturnType<typeof summary>>;
  backlogAtEnd: number;
  /** At the end of the send window: order-service outbox rows, `orders` jobs, order.processed events not yet handled, `notifications` jobs. */
  backlogWhere: Record<string, number>;
  drainMs: number | null;
  undelivered: number;
  rejected: number;
  keptUp: boolean;
  poll: { intervalMs: number; meanRoundTripMs: number; overflows: number };
  cpuPercentOfOneCore: Record<string, number>;
  /** The whole machine's busy CPU and the part not ours (other tenants), % of one core. */
  machineBusyPercent: number;
  otherProcessesPercent: number;
  loadAvgBefore: number[];
}

async function runStep(slice: Slice, rate: number, rep: number, redis: number | undefined, seconds = SECONDS): Promise<StepResult> {
  const users = await registerUsers(slice, USERS);
  const catalog = (await call<{ items: { sku: string; priceCents: number }[] }>(`${slice.urls.orders}/catalog`)).body.items.filter((i) => i.priceCents <= 200_000);
  await sleep(1_000);
  const loadAvgBefore = os.loadavg();
  const poller = new DeliveryPoller(slice, new Set(users.map((u) => u.email.toLowerCase())));
  poller.start();

  const total = rate * seconds;
  const sent: Sent[] = [];
  const inFlight: Promise<void>[] = [];
  const cpuBefore = await cpuSnapshot(slice, redis);
  const machineBefore = await machineJiffies();
  const t0 = performance.now() + 20;
  const wall0 = Date.now() + 20;
  let next = 0;
  // Open-loop sender: every ms tick, send all requests whose scheduled time has come.
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && t0 + (next * 1000) / rate <= now) {
        const i = next++;
        const user = users[i % users.length]!;
        const record: Sent = { userIndex: i % users.length, scheduledAt: t0 + (i * 1000) / rate, sentAt: 0 };
        sent.push(record);
        const started = performance.now();
        record.sentAt = Date.now();
        const sku = catalog[i % catalog.length]!.sku;
        inFlight.push(
          call(`${slice.urls.orders}/orders`, { token: user.token, body: { lines: [{ sku, quantity: 1 }] } }).then(
            (response) => {
              record.postMs = performance.now() - started;
              record.status = response.status;
              if (response.status === 201) record.orderId = response.body.id;
              else record.error = `${response.status} ${JSON.stringify(response.body).slice(0, 200)}`;
            },
            (error: unknown) => {
              record.postMs = performance.now() - started;
              record.error = String(error);
            },
          ),
        );
      }
      if (next >= total) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  const lastSendWall = Date.now();
  await Promise.all(inFlight);
  const sendEndWall = Date.now();
  // CPU over the send window (steady state), not the drain.
  const cpuAfter = await cpuSnapshot(slice, redis);
  const machineAfter = await machineJiffies();
  const cpuWindowMs = Date.now() - wall0;
  const acceptedIds = sent.filter((s) => s.orderId).map((s) => s.orderId!);
  const backlogAtEnd = acceptedIds.filter((id) => !poller.firstSeen.has(id)).length;
  const backlogWhere = await backlogGauges(slice);

  // Drain: wait until every accepted order's e-mail has been seen.
  const drainDeadline = Date.now() + DRAIN_TIMEOUT_MS;
  while (acceptedIds.some((id) => !poller.firstSeen.has(id)) && Date.now() < drainDeadline) await sleep(POLL_MS);
  await sleep(2 * POLL_MS);
  await poller.stop();

  const ts = await collectTimestamps(slice, users);
  const byId = new Map(sent.filter((s) => s.orderId).map((s) => [s.orderId!, s]));
  const deliveredMs: number[] = [];
  const firstSeenMs: number[] = [];
  const stage = { 'POST→created': [] as number[], 'created→paid': [] as number[], 'paid→processed': [] as number[], 'processed→delivered': [] as number[] };
  let lastDelivered = 0;
  for (const [id, s] of byId) {
    const delivered = ts.delivered.get(id);
    if (delivered === undefined) continue;
    lastDelivered = Math.max(lastDelivered, delivered);
    deliveredMs.push(delivered - s.sentAt);
    const seen = poller.firstSeen.get(id);
    if (seen !== undefined) firstSeenMs.push(seen - s.sentAt);
    const created = ts.created.get(id);
    const paid = ts.paidAt.get(id);
    const processed = ts.processed.get(id);
    if (created !== undefined && paid !== undefined && processed !== undefined) {
      stage['POST→created'].push(created - s.sentAt);
      stage['created→paid'].push(paid - created);
      stage['paid→processed'].push(processed - paid);
      stage['processed→delivered'].push(delivered - processed);
    }
  }
  const undelivered = acceptedIds.filter((id) => !ts.delivered.has(id)).length;
  const drainMs = undelivered === 0 ? Math.max(0, lastDelivered - lastSendWall) : null;

  // 201s per second of the send window (bucketed by when the answer came).
  const accepted = sent.filter((s) => s.status === 201);
  const buckets = new Array<number>(seconds).fill(0);
  for (const s of accepted) {
    const second = Math.floor((s.sentAt + s.postMs! - wall0) / 1000);
    if (second >= 0 && second < seconds) buckets[second]! += 1;
  }
  const errors = sent.filter((s) => s.status !== 201);
  const cpuPercent = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, ((cpuAfter[k]! - cpuBefore[k]!) / cpuWindowMs) * 100]));
  // Whole machine over the same window, in % of one core; minus ours = other tenants of the host.
  const machineBusy = ((machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total)) * os.cpus().length * 100;
  const ours = Object.values(cpuPercent).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const result: StepResult = {
    rate,
    rep,
    seconds,
    sent: sent.length,
    accepted: accepted.length,
    errors: errors.length,
    errorSamples: [...new Set(errors.map((e) => e.error ?? String(e.status)))].slice(0, 3),
    acceptedPerSecond: accepted.length / ((sendEndWall - wall0) / 1000),
    acceptedPerSecondMin: Math.min(...buckets),
    generatorLagMaxMs: Math.max(...sent.map((s) => s.sentAt - (wall0 + (s.scheduledAt - t0)))),
    postMs: summary(sent.filter((s) => s.postMs !== undefined).map((s) => s.postMs!)),
    deliveredMs: summary(deliveredMs),
    firstSeenMs: summary(firstSeenMs),
    stages: Object.fromEntries(Object.entries(stage).map(([k, v]) => [k, summary(v)])),
    backlogAtEnd,
    backlogWhere,
    drainMs,
    undelivered,
    rejected: [...byId.keys()].filter((id) => ts.rejected.has(id)).length,
    keptUp: false,
    poll: { intervalMs: POLL_MS, meanRoundTripMs: poller.pollMsTotal / Math.max(1, poller.polls), overflows: poller.overflows },
    cpuPercentOfOneCore: cpuPercent,
    machineBusyPercent: machineBusy,
    otherProcessesPercent: Math.max(0, machineBusy - ours),
    loadAvgBefore,
  };
  result.keptUp =
    result.errors === 0 &&
    result.accepted === total &&
    result.acceptedPerSecond >= 0.97 * rate &&
    result.undelivered === 0 &&
    backlogAtEnd <= rate &&
    (drainMs ?? Infinity) <= KEPT_UP_DRAIN_MS;
  return result;
}

export async function run(): Promise<Record<string, unknown>> {
  const env: Record<string, string> = {
    WORKER_CONCURRENCY,
    GATEWAY_RATE_LIMIT_IP_PER_MINUTE: '0',
    GATEWAY_RATE_LIMIT_USER_PER_MINUTE: '0',
    GATEWAY_RATE_LIMIT_ROUTE_FACTOR: '0',
  };
  if (NOTIFICATION_CONCURRENCY) env.NOTIFICATION_CONCURRENCY = NOTIFICATION_CONCURRENCY;
  const steps: StepResult[] = [];
  let overload: OverloadResult | undefined;
  let slice: Slice | undefined;
  try {
    slice = await startSlice({ env, services: [...SERVICES, 'gateway'] });
    const redis = await redisPid();
    // Warm-up, not reported (JIT, connection pools, tsx transform caches): 25 orders/s for 8 s.
    await runStep(slice, 25, 0, redis, 8);
    await sleep(2_000);
    for (let rep = 1; rep <= REPS; rep++) {
      for (const rate of RATES) {
        const step = await runStep(slice, rate, rep, redis);
        steps.push(step);
        if (process.env.BENCH_VERBOSE !== '0') {
          console.error(
            `[order-flow] ${rate}/s rep ${rep}: accepted ${step.accepted}/${step.sent}, POST p99 ${step.postMs.p99.toFixed(1)} ms, ` +
              `delivered p50 ${step.deliveredMs.p50} p99 ${step.deliveredMs.p99} ms, backlog ${step.backlogAtEnd}, drain ${step.drainMs} ms`,
          );
        }
        // A step that did not drain leaves work behind: higher rates of this round would measure it.
        if (step.undelivered > 0) break;
        await sleep(2_000);
      }
    }
    const sustained = Math.max(0, ...steps.filter((s) => s.keptUp).map((s) => s.rate));
    const overloadRate = Number(process.env.BENCH_OVERLOAD_RATE ?? 2 * (sustained || Math.min(...RATES)));
    await sleep(2_000);
    overload = await overloadStep(slice, overloadRate, SECONDS);
  } catch (error) {
    if (slice) console.error(slice.logs());
    throw error;
  } finally {
    await stopAll();
  }
  return {
    setup: {
      rates: RATES,
      seconds: SECONDS,
      reps: REPS,
      users: USERS,
      workerConcurrency: Number(WORKER_CONCURRENCY),
      notificationConcurrency: NOTIFICATION_CONCURRENCY ? Number(NOTIFICATION_CONCURRENCY) : '10 (service default)',
      pollMs: POLL_MS,
      keptUpDefinition: `no errors, every order accepted, 201s/s ≥ 97% of offered, ≤ 1 s of orders undelivered at the end of the send window, all delivered within ${KEPT_UP_DRAIN_MS} ms of the last POST`,
      cpus: os.cpus().length,
      node: process.version,
    },
    steps,
    overload,
  };
}

function printReport(result: Record<string, unknown>): void {
  const setup = result.setup as Record<string, unknown>;
  const steps = result.steps as StepResult[];
  console.log(
    `\nOrder flow: ${setup.users} users, ${setup.seconds} s per step, ${setup.reps} rounds, WORKER_CONCURRENCY=${setup.workerConcurrency}, ` +
      `NOTIFICATION_CONCURRENCY=${setup.notificationConcurrency}, ${setup.cpus} CPUs, Node ${setup.node}`,
  );
  console.log(`POST→delivered uses the provider's deliveredAt (ms); "seen" uses the ${setup.pollMs} ms poller (adds ≈ poll interval/2 + round trip).`);
  console.log(`kept up = ${String(setup.keptUpDefinition)}.\n`);
  printTable(
    steps.map((s) => ({
      'rate/s': s.rate,
      rep: s.rep,
      sent: s.sent,
      accepted: s.accepted,
      err: s.errors,
      'acc/s': s.acceptedPerSecond,
      'min acc/s': s.acceptedPerSecondMin,
      'POST p50': s.postMs.p50,
      p95: s.postMs.p95,
      p99: s.postMs.p99,
      max: s.postMs.max,
      'deliv p50': s.deliveredMs.p50,
      'd p95': s.deliveredMs.p95,
      'd p99': s.deliveredMs.p99,
      'd max': s.deliveredMs.max,
      'seen p50': s.firstSeenMs.p50,
      'backlog@end': s.backlogAtEnd,
      'drain ms': s.drainMs ?? 'timeout',
      'kept up': s.keptUp ? 'yes' : 'NO',
    })),
  );
  console.log('\nWhere the time goes (ms, p50 / p99): POST→created = order-service; created→paid = outbox relay + queue + worker pick-up + pricing;');
  console.log('paid→processed = the worker finishing; processed→delivered = order.processed event → order-service → outbox → notifications queue → notification-service → provider.\n');
  printTable(
    steps.map((s) => ({
      'rate/s': s.rate,
      rep: s.rep,
      ...Object.fromEntries(Object.entries(s.stages).map(([k, v]) => [k, `${v.p50} / ${v.p99}`])),
    })),
  );
  console.log('\nBacklog at the end of the send window: not yet delivered, and where it sits (services\' /metrics gauges; queues = waiting+active+delayed):\n');
  printTable(steps.map((s) => ({ 'rate/s': s.rate, rep: s.rep, undelivered: s.backlogAtEnd, ...s.backlogWhere })));
  console.log('\nCPU over the send window (% of one core; the machine has ' + String(setup.cpus) + ' cores; "other procs" = machine busy minus ours):\n');
  printTable(
    steps.map((s) => ({
      'rate/s': s.rate,
      rep: s.rep,
      ...Object.fromEntries(Object.entries(s.cpuPercentOfOneCore).map(([k, v]) => [k, v])),
      'ours total': Object.values(s.cpuPercentOfOneCore).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0),
      'other procs': s.otherProcessesPercent,
      'load1 before': s.loadAvgBefore[0]!.toFixed(2),
      'gen lag max ms': s.generatorLagMaxMs,
      'poll rtt ms': s.poll.meanRoundTripMs,
    })),
  );
  const overload = result.overload as OverloadResult | undefined;
  if (overload) {
    console.log(`\nOverload: ${overload.rate} orders/s for ${overload.seconds} s through the gateway (twice the highest rate that kept up, unless BENCH_OVERLOAD_RATE):\n`);
    printTable([
      {
        sent: overload.sent,
        ...Object.fromEntries(Object.entries(overload.byStatus).map(([status, n]) => [`HTTP ${status}`, n])),
        '503 share': `${(overload.share503 * 100).toFixed(1)} %`,
        'answered p50': overload.answeredMs.p50,
        'answered p99': overload.answeredMs.p99,
        '201 p99': overload.acceptedMs.p99,
        '503 p99': overload.refusedMs.p99,
        '503 max': overload.refusedMs.max,
      },
    ]);
    console.log(`error codes: ${JSON.stringify(overload.byCode)}`);
    console.log('latency by layer (histogram bucket bounds, ms):');
    printTable(Object.entries(overload.layers).map(([layer, l]) => ({ layer, n: l.n, p50: l.p50, p99: l.p99 })));
    console.log(`event-loop delay over the step, ms (p99 / max): ${Object.entries(overload.eventLoopDelayMs).map(([name, d]) => `${name} ${d.p99.toFixed(1)} / ${d.max.toFixed(1)}`).join(', ')}`);
    console.log(`orders placed for requests not answered 201 (found by retrying with the same key), by first answer: ${JSON.stringify(overload.placedDespiteError)}; placed only on retry: ${JSON.stringify(overload.placedOnRetry)}`);
    console.log(`goals: answered p99 < 2 s ${overload.goals.answeredP99Under2s ? 'met' : 'NOT met'}; every refusal within 1 s ${overload.goals.refusalsWithin1s ? 'met' : 'NOT met'}; no order behind an error other than 504 ${overload.goals.noOrderBehindNon504Error ? 'met' : 'NOT met'}`);
  }
  const errors = steps.flatMap((s) => s.errorSamples.map((e) => `${s.rate}/s rep ${s.rep}: ${e}`));
  if (errors.length > 0) console.log(`\nerrors (samples):\n${errors.join('\n')}`);
  if (steps.some((s) => s.rejected > 0)) console.log(`\nrejected orders: ${steps.map((s) => s.rejected).join(', ')}`);
}

export { printReport };

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  printReport(await run());
}
