import { userInfo } from 'node:os';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, PermanentError } from '@civildiy/common';
import { orderProcessed, sendNotification } from '@civildiy/common/contracts';
import type { Subscription } from '@civildiy/common/events';
import { TaskFailedError, TaskWorker } from '@civildiy/common/tasks';
import { REDIS_URL, repositoryRoot, runTypescriptCommand, type CommandOutcome } from '@civildiy/common/testing';
import { logger, startDashboard, type DashboardUnderTest } from './dashboard-under-test.ts';

const WAIT = { timeout: 15_000, interval: 50 };

let dashboard: DashboardUnderTest;
let worker: TaskWorker;
let subscription: Subscription;
let failing = true;
let taskId: string;
let eventId: string;

/** `npm run ops -- <args>` as a real process, from the sources, on this test's Redis keys. */
function ops(...args: string[]): Promise<CommandOutcome> {
  return runTypescriptCommand({
    cwd: repositoryRoot,
    script: 'dashboard/src/cli/ops-cli.ts',
    args,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', REDIS_BROKER_URL: REDIS_URL, REDIS_KEY_PREFIX: dashboard.prefix, LOG_FORMAT: 'json' },
  });
}

beforeAll(async () => {
  dashboard = await startDashboard();
  worker = new TaskWorker({ connection: REDIS_URL, prefix: dashboard.prefix, queues: ['notifications'], logger, registry: new Registry(), name: 'cli-test-worker' });
  worker.handle(sendNotification, (input) => {
    if (failing) throw new PermanentError('No such mailbox', 'notifications.mailbox_unknown');
    return { notificationId: input.notificationId, status: 'delivered' as const, providerMessageId: 'm', channel: 'email' as const, deliveredAt: new Date().toISOString() };
  });
  await worker.start();
  subscription = dashboard.bus.subscribe({
    group: 'cli-test-consumer',
    events: [orderProcessed],
    handle: () => {
      throw new PermanentError('Unknown order', 'orders.unknown_order');
    },
  });
  await subscription.ready;

  const ref = await dashboard.tasks.enqueue(sendNotification, { notificationId: newId(), userId: newId(), template: 'welcome', data: {} });
  await expect(ref.result({ timeoutMs: 10_000 })).rejects.toBeInstanceOf(TaskFailedError);
  taskId = `task:notifications:${ref.id}`;
  const envelope = await dashboard.bus.publish(orderProcessed, {
    orderId: newId(),
    customerId: newId(),
    status: 'rejected',
    totalCents: 0,
    currency: 'EUR',
    reason: 'card_declined',
    processedAt: new Date().toISOString(),
  });
  const findLetter = async () => (await dashboard.bus.deadLetters('orders-events')).find((letter) => letter.envelope?.id === envelope.id);
  await whenFound(findLetter);
  eventId = `event:orders-events:${(await findLetter())!.id}`;
}, 60_000);

/** Waits until `find` finds something (the dead letter is written just after the handler threw). */
async function whenFound(find: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + WAIT.timeout;
  while ((await find()) === undefined) {
    if (Date.now() > deadline) throw new Error('the dead letter did not appear');
    await new Promise((resolve) => setTimeout(resolve, WAIT.interval));
  }
}

afterAll(async () => {
  await subscription?.close();
  await worker?.close();
  await dashboard?.close();
});

describe('npm run ops', () => {
  it('dead-letters list prints the task and event dead letters as a table, and as JSON with --json', async () => {
    const table = await ops('dead-letters', 'list');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+GROUP\s+CODE\s+ATTEMPTS\s+FAILED AT\s+ERROR/);
    expect(table.stdout).toContain(taskId);
    expect(table.stdout).toContain(eventId);
    expect(table.stdout).toContain('2 of 2 dead letters');

    const json = await ops('dead-letters', 'list', '--kind', 'event', '--json');
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout) as { total: number; items: { id: string; group: string; errorCode: string }[] };
    expect(page.total).toBe(1);
    expect(page.items[0]).toMatchObject({ id: eventId, group: 'cli-test-consumer', errorCode: 'orders.unknown_order' });
  });

  it('dead-letters show prints the payload, the contract check and every attempt', async () => {
    const shown = await ops('dead-letters', 'show', taskId);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('notifications.mailbox_unknown: No such mailbox');
    expect(shown.stdout).toContain('contract:    valid');
    expect(shown.stdout).toMatch(/ATTEMPT\s+AT\s+WORKER\s+CODE\s+MESSAGE\n1\s+\S+\s+cli-test-worker\s+notifications\.mailbox_unknown/);
  });

  it('dead-letters redrive runs a task again (recorded as the OS user), then says it was already redriven (exit 1)', async () => {
    failing = false;
    const redriven = await ops('dead-letters', 'redrive', taskId);
    expect(redriven.code, redriven.stderr).toBe(0);
    expect(redriven.stdout).toContain(`redriven          ${taskId}`);
    await expect(dashboard.tasks.ref(sendNotification, taskId.split(':')[2]!).result({ timeoutMs: 10_000 })).resolves.toMatchObject({ status: 'delivered' });

    const again = await ops('dead-letters', 'redrive', taskId);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`already redriven  ${taskId}`);

    const { body } = await dashboard.call('GET', '/admin/activity?limit=5', { token: dashboard.operatorToken });
    const username = userInfo().username;
    expect(body.items.slice(0, 2)).toEqual([
      expect.objectContaining({ actor: expect.objectContaining({ username, via: 'cli' }), action: 'dead_letter.redrive', target: taskId, outcome: 'already_redriven' }),
      expect.objectContaining({ actor: expect.objectContaining({ username, via: 'cli' }), action: 'dead_letter.redrive', target: taskId, outcome: 'done' }),
    ]);
  });

  it('exits 1 with a clear message for an unknown or malformed id, 2 for a discard without --yes or an unknown command', async () => {
    const unknown = `task:notifications:${newId()}`;
    const missing = await ops('dead-letters', 'show', unknown);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`No dead letter ${unknown} (dashboard.dead_letter_not_found)`);
    const redrive = await ops('dead-letters', 'redrive', unknown);
    expect(redrive.code).toBe(1);
    expect(redrive.stdout).toContain(`not found         ${unknown}`);

    const malformed = await ops('dead-letters', 'show', 'orders-123');
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('dashboard.invalid_dead_letter_id');
    const unconfirmed = await ops('dead-letters', 'discard', eventId);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('add --yes to confirm');
    const usage = await ops('dead-letters', 'purge');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Usage: npm run ops');
  });

  it('dead-letters discard --yes deletes an event dead letter for good', async () => {
    const discarded = await ops('dead-letters', 'discard', eventId, '--yes');
    expect(discarded.code, discarded.stderr).toBe(0);
    expect(discarded.stdout).toContain(`discarded  ${eventId}`);
    expect(await dashboard.bus.deadLetters('orders-events')).toEqual([]);
  });

  it('queues prints every queue of the contracts with its counts', async () => {
    const table = await ops('queues');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^QUEUE\s+WAITING\s+ACTIVE\s+DELAYED\s+DEAD LETTERS\s+COMPLETED\s+WORKERS\s+OLDEST WAITING/);
    expect(table.stdout).toMatch(/\nnotifications\s+0\s+0\s+0\s+0\s+1\s+1\s+-/);
    const json = JSON.parse((await ops('queues', '--json')).stdout) as { queue: string; completedPerMinute: number | null }[];
    expect(json.map((queue) => queue.queue)).toEqual(expect.arrayContaining(['orders', 'notifications', 'embeddings']));
    expect(json[0]!.completedPerMinute).toBeNull();
  });
});
