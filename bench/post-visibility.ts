/**
 * Post → feed visibility through the gateway, shared by the feed and events benchmarks:
 * `POST /posts` at `rate` posts/s, open loop (post i is sent at t0 + i/rate whatever the answers),
 * while `pollers` loops read `GET /feed?limit=100` through the gateway back to back and note when
 * each post id first appears. Visibility = first seen − the POST's response time, so the figure is
 * the asynchronous part (outbox → bus → projection → readable); its resolution is one poll round
 * trip (`pollP50`, reported).
 */
import { performance } from 'node:perf_hooks';
import type { RegisteredUser } from '@civildiy/common/testing';
import { call, summary, type Slice } from './system.ts';

/** How hard and how long {@link postToFeedVisibility} drives the slice. */
export interface VisibilityOptions {
  /** Posts per second offered. */
  rate: number;
  /** How long posts are sent. */
  seconds: number;
  /** Concurrent `GET /feed?limit=100` loops. */
  pollers: number;
}

/** The figures of one visibility round (ms unless named otherwise); a type, so it prints as a table row. */
export type VisibilityFigures = {
  round: number;
  rate: number;
  sent: number;
  accepted: number;
  failed: number;
  /** Accepted posts never seen in the feed within 30 s of the last answer. */
  missing: number;
  achievedRate: number;
  postP50: number;
  postP99: number;
  visibleP50: number;
  visibleP99: number;
  visibleMax: number;
  pollP50: number;
};

/** A round's figures and, per accepted post id, when its POST was answered and when the feed first showed it (`performance.now()`). */
export interface VisibilityRound {
  figures: VisibilityFigures;
  answeredAt: ReadonlyMap<string, number>;
  firstSeenAt: ReadonlyMap<string, number>;
}

/** `POST /posts` through `gateway` as `user`: a build log of about 300 characters. */
export async function createPost(gateway: string, user: RegisteredUser, index: number): Promise<{ status: number; postId?: string }> {
  const response = await call(`${gateway}/posts`, {
    token: user.token,
    body: {
      title: `Build log ${index}: a garden bench from pallets`,
      body: 'Disassemble the pallets, plane the boards, cut the legs at 10 degrees, glue and screw, oil twice. '.repeat(3),
      tags: ['woodworking', 'garden'],
    },
  });
  return { status: response.status, ...(response.status === 201 ? { postId: response.body.postId as string } : {}) };
}

/** Writes `count` posts (20 at a time) and waits until the global feed shows a full page of 20: warms every hop and gives readers a page. */
export async function seedFeed(gateway: string, users: readonly RegisteredUser[], count = 200): Promise<void> {
  for (let index = 0; index < count; index += 20) {
    await Promise.all(Array.from({ length: Math.min(20, count - index) }, (_, offset) => createPost(gateway, users[(index + offset) % users.length]!, index + offset)));
  }
  for (;;) {
    const page = await call(`${gateway}/feed?limit=20`);
    if ((page.body.items as unknown[] | undefined)?.length === 20) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One round of the measurement (see the file's header). */
export async function postToFeedVisibility(system: Slice, users: readonly RegisteredUser[], round: number, options: VisibilityOptions): Promise<VisibilityRound> {
  const gateway = system.urls.gateway;
  const total = options.rate * options.seconds;
  const answered = new Map<string, number>();
  const firstSeen = new Map<string, number>();
  const postLatency: number[] = [];
  const pollTimes: number[] = [];
  let failures = 0;
  let polling = true;

  const poller = async () => {
    while (polling) {
      const started = performance.now();
      const response = await fetch(`${gateway}/feed?limit=100`);
      const body = (await response.json()) as { items?: { postId: string }[] };
      const now = performance.now();
      pollTimes.push(now - started);
      for (const item of body.items ?? []) if (!firstSeen.has(item.postId)) firstSeen.set(item.postId, now);
    }
  };
  const pollers = Array.from({ length: options.pollers }, () => poller());

  const t0 = performance.now() + 50;
  const sends: Promise<void>[] = [];
  for (let index = 0; index < total; index++) {
    const due = t0 + (index * 1000) / options.rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const sentAt = performance.now();
    sends.push(
      createPost(gateway, users[index % users.length]!, index).then(({ status, postId }) => {
        const at = performance.now();
        postLatency.push(at - sentAt);
        if (status !== 201 || !postId) failures++;
        else answered.set(postId, at);
      }),
    );
  }
  await Promise.all(sends);
  const sendWindowS = (performance.now() - t0) / 1000;
  // Drain: until every accepted post was seen, or 30 s.
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline && [...answered.keys()].some((id) => !firstSeen.has(id))) await new Promise((resolve) => setTimeout(resolve, 20));
  polling = false;
  await Promise.all(pollers);

  const visible: number[] = [];
  let missing = 0;
  for (const [postId, at] of answered) {
    const seen = firstSeen.get(postId);
    if (seen === undefined) missing++;
    else visible.push(Math.max(0, seen - at));
  }
  const vis = summary(visible);
  const post = summary(postLatency);
  const poll = summary(pollTimes);
  return {
    figures: {
      round,
      rate: options.rate,
      sent: total,
      accepted: answered.size,
      failed: failures,
      missing,
      achievedRate: Number((total / sendWindowS).toFixed(1)),
      postP50: post.p50,
      postP99: post.p99,
      visibleP50: vis.p50,
      visibleP99: vis.p99,
      visibleMax: vis.max,
      pollP50: poll.p50,
    },
    answeredAt: answered,
    firstSeenAt: firstSeen,
  };
}
