import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { kafkaToolingMissing, PrivateKafkaBroker, SOCIAL_SERVICES } from '@civildiy/common/testing';
import { UNLIMITED_GATEWAY, call, registerUser, startSystem, type RegisteredUser, type System } from './system.ts';

/**
 * The Kafka broker goes away under a steady stream of posts through the gateway, with the social
 * core on `EVENT_BUS=kafka`. Posts are written to posts-service's outbox, so the API must not depend
 * on the broker: every post is accepted while it is down, and once it is back the relay and the
 * consumers carry on by themselves — every accepted post reaches the feed, no process restarts.
 *
 * The broker is a private one (free ports, a temporary data folder; the run's shared test broker is
 * left alone), stopped as an operator would (SIGTERM, a controlled shutdown) and started again on
 * the same folder and ports, so its topics and committed offsets are back. It needs Java 17 and
 * Maven: on a machine without them the test is skipped with the reason, under CI=true it fails.
 */

/** How long the broker stays down: the scenario itself, measured by the clock while the posting goes on. */
const OUTAGE_MS = 10_000;
/** Pause between two posts: a steady stream, not a benchmark. */
const POST_INTERVAL_MS = 75;
/**
 * The authors take turns, so that each author's feed — which keeps its newest 100 posts only —
 * can show every post of the ~200 the scenario publishes.
 */
const AUTHORS = 4;
/** A request that has not answered within this long counts as hung (the gateway itself answers 504 after 10 s). */
const HANG_MS = 12_000;
/** Waiting for the events: the outbox retries a row with exponential backoff (1 s, 2 s, 4 s, …), so a row may wait up to ~16 s after a 10 s outage. */
const eventually = { timeout: 90_000, interval: 250 };

type Phase = 'before' | 'outage' | 'after';

/** One post of the stream: the phase it was sent in, and how it was answered. */
interface Attempt {
  phase: Phase;
  authorId: string;
  /** The HTTP status, or `hung` (no answer within {@link HANG_MS}) or `error` (the connection failed). */
  status: number | 'hung' | 'error';
  postId?: string;
  code?: string;
}

/** A post every {@link POST_INTERVAL_MS} through the gateway, the authors taking turns, until stopped. */
class SteadyPosting {
  phase: Phase = 'before';
  readonly attempts: Attempt[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly gateway: string,
    private readonly authors: readonly RegisteredUser[],
  ) {
    this.loop = this.run();
  }

  /** The ids of the posts accepted (201) in `phase` (default: every phase), by `author` (default: anyone). */
  accepted(phase?: Phase, author?: RegisteredUser): string[] {
    return this.attempts
      .filter((attempt) => attempt.status === 201 && (!phase || attempt.phase === phase) && (!author || attempt.authorId === author.id))
      .map((attempt) => attempt.postId!);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private async run(): Promise<void> {
    for (let n = 1; this.running; n++) {
      const author = this.authors[n % this.authors.length]!;
      const attempt: Attempt = { phase: this.phase, authorId: author.id, status: 'error' };
      this.attempts.push(attempt);
      try {
        const response = await fetch(`${this.gateway}/posts`, {
          method: 'POST',
          headers: { authorization: `Bearer ${author.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ title: `Potting bench, step ${n}`, body: 'Reclaimed pallet wood and a zinc top.', tags: ['garden'] }),
          signal: AbortSignal.timeout(HANG_MS),
        });
        const body = (await response.json()) as { postId?: string; error?: { code?: string } };
        attempt.status = response.status;
        if (body.postId) attempt.postId = body.postId;
        if (body.error?.code) attempt.code = body.error.code;
      } catch (error) {
        attempt.status = error instanceof Error && error.name === 'TimeoutError' ? 'hung' : 'error';
      }
      await delay(POST_INTERVAL_MS);
    }
  }
}

const missingTooling = await kafkaToolingMissing();
const skip = missingTooling !== undefined && process.env.CI !== 'true';

describe.skipIf(skip)(`a Kafka broker outage under steady posting, real processes behind the gateway${skip ? ` (skipped: ${missingTooling})` : ''}`, () => {
  let kafka: PrivateKafkaBroker;
  let system: System;
  let gateway: string;

  beforeAll(async () => {
    if (missingTooling) throw new Error(missingTooling);
    kafka = await PrivateKafkaBroker.start();
    system = await startSystem({
      services: SOCIAL_SERVICES,
      env: { ...UNLIMITED_GATEWAY, EVENT_BUS: 'kafka', KAFKA_BROKERS: kafka.bootstrap, KAFKA_SESSION_TIMEOUT_MS: '6000' },
    });
    gateway = system.urls.gateway;
  }, 240_000);

  afterAll(async () => {
    await system?.stop();
    await kafka?.remove();
  }, 60_000);

  /** posts-service's readiness: its status and the state of each check. */
  async function postsReadiness(): Promise<{ status: number; checks: Record<string, string> }> {
    const response = await call(`${system.urls.posts}/health/ready`);
    const checks = (response.body?.checks ?? {}) as Record<string, { status: string }>;
    return { status: response.status, checks: Object.fromEntries(Object.entries(checks).map(([name, check]) => [name, check.status])) };
  }

  /** The post ids of a feed, every page. */
  async function feedPostIds(path: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const response = await call(`${gateway}${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      ids.push(...(response.body.items as { postId: string }[]).map((item) => item.postId));
      cursor = response.body.nextCursor as string | null;
    } while (cursor);
    return ids;
  }

  it('when the broker stops for 10 s, every post is still accepted, reaches the feed once it is back, and every consumer resumes without a restart', async () => {
    onTestFailed(() => console.error(`The system's last output:\n${system.logs()}`));
    const authors = await Promise.all(Array.from({ length: AUTHORS }, () => registerUser(gateway)));
    const pids = new Map([...system.processes].map(([name, service]) => [name, service.child.pid]));
    expect(await postsReadiness()).toMatchObject({ status: 200, checks: { events: 'up' } });

    const posting = new SteadyPosting(gateway, authors);
    try {
      // The flow works before the outage: a first post is in the feed.
      await expect.poll(() => posting.accepted('before').length, eventually).toBeGreaterThan(0);
      const [first] = posting.accepted('before');
      await expect.poll(async () => (await feedPostIds('/feed')).includes(first!), eventually).toBe(true);

      posting.phase = 'outage';
      await kafka.stop();
      const down = Date.now();
      // Readiness says at once that the events are down, and only they: the service's own database and Redis answer.
      await expect.poll(postsReadiness, { timeout: 10_000, interval: 250 }).toMatchObject({ status: 503, checks: { events: 'down', database: 'up', redis: 'up' } });
      // The outage is the scenario: the broker stays down this long while the posts keep coming.
      await delay(Math.max(0, OUTAGE_MS - (Date.now() - down)));
      await kafka.up();
      posting.phase = 'after';

      await expect.poll(postsReadiness, eventually).toMatchObject({ status: 200, checks: { events: 'up' } });
      await expect.poll(() => posting.accepted('after').length, eventually).toBeGreaterThanOrEqual(20);
    } finally {
      await posting.stop();
    }

    // Every post was answered 201, before, during and after the outage; dozens of them while the broker was down.
    expect(posting.attempts.filter((attempt) => attempt.status !== 201)).toEqual([]);
    expect(posting.accepted('outage').length).toBeGreaterThanOrEqual(30);

    // Nothing written to the outbox is lost: every accepted post reaches the global feed and its author's.
    const missingFrom = async (path: string, accepted: string[]) => {
      const shown = new Set(await feedPostIds(path));
      return accepted.filter((postId) => !shown.has(postId));
    };
    await expect.poll(() => missingFrom('/feed', posting.accepted()), eventually).toEqual([]);
    for (const author of authors) {
      expect(posting.accepted(undefined, author).length, 'posts of one author (the feed keeps 100)').toBeLessThanOrEqual(100);
      expect(await missingFrom(`/feed/users/${author.id}`, posting.accepted(undefined, author))).toEqual([]);
    }

    // The other consumers resumed too: a registration reaches profile-service (user.registered), a rename the feed (profile.updated).
    const newcomer = await registerUser(gateway);
    await expect.poll(async () => (await call(`${gateway}/profiles/me`, { token: newcomer.token })).status, eventually).toBe(200);
    const [author] = authors;
    await expect.poll(async () => (await call(`${gateway}/profiles/me`, { token: author!.token })).status, eventually).toBe(200);
    const renamed = await call(`${gateway}/profiles/me`, { method: 'PUT', token: author!.token, body: { displayName: 'Potting Pat' } });
    expect(renamed.status, JSON.stringify(renamed.body)).toBe(200);
    await expect
      .poll(async () => ((await call(`${gateway}/feed/users/${author!.id}?limit=1`)).body.items as { authorDisplayName: string }[])[0]?.authorDisplayName, eventually)
      .toBe('Potting Pat');

    // No process exited or was restarted: the same PIDs, all still running.
    const now = [...system.processes].map(([name, service]) => ({ name, pid: service.child.pid, exitCode: service.child.exitCode, signal: service.child.signalCode }));
    expect(now).toEqual([...pids].map(([name, pid]) => ({ name, pid, exitCode: null, signal: null })));
  }, 300_000);
});
