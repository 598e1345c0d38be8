import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { baseEnv, createLogger, newId } from '@civildiy/common';
import { orderProcessed, processOrder } from '@civildiy/common/contracts';
import type { EventBus, EventEnvelope } from '@civildiy/common/events';
import { createEventBus } from '@civildiy/common/runtime';
import { loginUser, SYSTEM_SERVICES } from '@civildiy/common/testing';
import { chromiumMissing, launchChromium } from './browser.ts';
import { call, PASSWORD, registerUser, root, startSystem, UNLIMITED_GATEWAY, type RegisteredUser, type System } from './system.ts';

/** Test artifacts (git-ignored): what the page looked like, and the page at a failure. */
const SCREENSHOTS = path.join(root, '.data', 'screenshots');
/** How long the page may take to show what a test waits for (a dashboard round is 0.5 s here). */
const SEEN = { timeout: 30_000 };
const poll = { timeout: 60_000, interval: 200 };

const skipReason = chromiumMissing();

// Evaluated in the page (as strings: this project is type-checked without the DOM's types).
const FOCUSED_TEST_ID = `document.activeElement?.getAttribute('data-testid') ?? null`;

/**
 * The operators' dashboard as an operator uses it: the built page served by the compiled dashboard,
 * driven in Debian's headless Chromium through playwright-core, in front of the whole system (every
 * service a real process, events on Redis Streams). One system and one signed-in page for the file:
 * the tests run in order and each waits for what the page shows.
 */
describe.skipIf(skipReason !== undefined)(`the operators' dashboard in headless Chromium${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let system: System;
  let browser: Browser;
  let page: Page;
  let operator: RegisteredUser;
  let operatorToken: string;
  let customer: RegisteredUser;
  let bus: EventBus | undefined;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    system = await startSystem({
      services: SYSTEM_SERVICES,
      compiled: true,
      env: {
        ...UNLIMITED_GATEWAY,
        DASHBOARD_REFRESH_MS: '500',
        DASHBOARD_HISTORY_STEP_SECONDS: '2',
        // After the payments fault is cleared, the worker's open circuit lets a trial call through soon.
        PAYMENTS_BREAKER_HALF_OPEN_MS: '1000',
      },
    });
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, colorScheme: 'light', deviceScaleFactor: 1 });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await mkdir(SCREENSHOTS, { recursive: true });
    [operator, customer] = await Promise.all([registerUser(system.urls.gateway, 'operator'), registerUser(system.urls.gateway, 'customer')]);
    await system.grantRole(operator.email);
    operatorToken = await loginUser(system.urls.gateway, operator.email);
  });

  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail' && page) {
      await page.screenshot({ path: path.join(SCREENSHOTS, `failed-${task.name.replace(/\W+/g, '-').slice(0, 60)}.png`), fullPage: true }).catch(() => undefined);
    }
  });

  afterAll(async () => {
    await browser?.close();
    await bus?.close();
    await system?.stop();
  });

  const byTestId = (id: string, attributes = '') => page.locator(`[data-testid="${id}"]${attributes}`);
  const tile = (service: string, light: 'green' | 'amber' | 'red') => byTestId(`service-${service}`, `[data-light="${light}"]`);
  const adminCall = (pathAndQuery: string) => call(`${system.urls.dashboard}${pathAndQuery}`, { token: operatorToken });

  async function signIn(user: RegisteredUser) {
    await page.getByTestId('sign-in-login').fill(user.email);
    await page.getByTestId('sign-in-password').fill(PASSWORD);
    await page.getByTestId('sign-in-submit').click();
  }

  async function setPaymentFaults(faults: Record<string, number>) {
    const response = await call(`${system.urls.payments}/_admin/faults`, { method: 'PUT', body: faults });
    expect(response.status).toBe(200);
  }

  async function placeOrder() {
    const placed = await call(`${system.urls.gateway}/orders`, { token: customer.token, body: { lines: [{ sku: 'KIT-SHELF-01', quantity: 1 }] } });
    expect(placed.status, JSON.stringify(placed.body)).toBe(201);
    return placed.body.id as string;
  }

  /** The dashboard id of the one row matching `prefix` (e.g. `task:orders:`), once the page lists it. */
  async function deadLetterRow(prefix: string, except?: string): Promise<string> {
    const rows = page.locator(`[data-testid^="dead-letter-${prefix}"]${except ? `:not([data-testid="dead-letter-${except}"])` : ''}`);
    await rows.first().waitFor({ timeout: poll.timeout });
    expect(await rows.count()).toBe(1);
    return (await rows.first().getAttribute('data-testid'))!.slice('dead-letter-'.length);
  }

  /** Tabs from `from` until `target` has the keyboard focus (a few steps at most), then presses Enter there. */
  async function tabToAndPress(from: Locator, target: string) {
    await from.focus();
    for (let step = 0; step < 5; step++) {
      if ((await page.evaluate(FOCUSED_TEST_ID)) === target) {
        await page.keyboard.press('Enter');
        return;
      }
      await page.keyboard.press('Tab');
    }
    throw new Error(`${target} was not reached by Tab`);
  }

  it('refuses an ordinary user, and shows an operator every service green, live', async () => {
    await page.goto(system.urls.dashboard);
    await signIn(customer);
    await page.getByTestId('sign-in-error').waitFor(SEEN);
    expect(await page.getByTestId('sign-in-error').textContent()).toContain('This account is not an operator.');

    await signIn(operator);
    await byTestId('live-state', '[data-state="live"]').waitFor(SEEN);
    expect(await page.getByTestId('signed-in-user').textContent()).toBe(operator.username);
    for (const service of system.services) await tile(service, 'green').waitFor(SEEN);
    expect(await page.locator('[data-testid^="service-"][data-light]').count()).toBe(system.services.length);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'overview.png') });
  });

  it('turns a stopped service red, and amber (restarted lately) once it runs again', async () => {
    await system.processes.get('notification-service')!.stop();
    await tile('notification-service', 'red').waitFor(SEEN);
    await system.restart('notification-service');
    // The contract's rule: live and ready, but restarted in the last 10 minutes, is amber.
    await page.locator('[data-testid="service-notification-service"][data-light="amber"]', { hasText: 'restarted at' }).waitFor(SEEN);
    const status = (await adminCall('/admin/overview')).body.services.find((s: { name: string }) => s.name === 'notification-service');
    expect(status).toMatchObject({ light: 'amber', live: true, ready: true, restarts: 1 });
  });

  it('lists an order whose payment fails for good with every attempt, and confirms it once redriven from the page', async () => {
    await setPaymentFaults({ failureRate: 1, failureStatus: 503 });
    const orderId = await placeOrder();
    const id = await deadLetterRow('task:orders:');

    await byTestId(`open-${id}`).click();
    await byTestId('dead-letter-attempts').waitFor(SEEN);
    expect(await byTestId('dead-letter-payload').textContent()).toContain(orderId);
    const attempts = processOrder.retry.attempts;
    expect(await byTestId('dead-letter-attempts').locator('tbody tr').count()).toBe(attempts);
    expect((await adminCall(`/admin/dead-letters/${encodeURIComponent(id)}`)).body).toMatchObject({ attempts, name: 'orders.process' });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dead-letter-detail.png') });

    await setPaymentFaults({});
    await byTestId('detail-redrive').click();
    await byTestId('dead-letter-detail').waitFor({ ...SEEN, state: 'detached' });
    await byTestId(`dead-letter-${id}`).waitFor({ ...SEEN, state: 'detached' });
    expect(await byTestId('dead-letters-message').textContent()).toBe('1 redriven.');
    await expect.poll(async () => (await call(`${system.urls.gateway}/orders/${orderId}`, { token: customer.token })).body.status, poll).toBe('confirmed');
    await byTestId('activity-list').locator('[data-action="dead_letter.redrive"][data-outcome="done"]', { hasText: id }).waitFor(SEEN);
  });

  it('shows an event whose data breaks its contract, redrives it by keyboard (it fails again) and discards it after confirming', async () => {
    // A producer on an older contract publishes an outcome order-service cannot read: a status that does not exist.
    bus = await createEventBus(baseEnv.parse({ ...process.env, ...system.env }), { service: 'e2e-dashboard-browser', logger: createLogger({ service: 'e2e', level: 'silent' }) });
    const orderId = newId();
    const envelope: EventEnvelope = {
      id: newId(),
      type: orderProcessed.type,
      version: orderProcessed.version,
      topic: orderProcessed.topic,
      key: orderId,
      occurredAt: new Date().toISOString(),
      correlationId: newId(),
      data: { orderId, status: 'shipped' },
    };
    await bus.publishEnvelope(envelope);
    const first = await deadLetterRow(`event:${orderProcessed.topic}:`);

    await byTestId(`open-${first}`).click();
    await byTestId('contract-check', '[data-status="invalid"]').waitFor(SEEN);
    expect(await byTestId('dead-letter-error').textContent()).toContain('events.invalid_data');
    expect(await byTestId('dead-letter-payload').textContent()).toContain(envelope.id);
    await page.keyboard.press('Escape');
    await byTestId('dead-letter-detail').waitFor({ ...SEEN, state: 'detached' });

    // Redriven as it is, the data is still invalid: order-service dead-letters it again, as a new dead letter.
    await tabToAndPress(byTestId(`open-${first}`), `redrive-${first}`);
    await byTestId(`dead-letter-${first}`).waitFor({ ...SEEN, state: 'detached' });
    await byTestId('activity-list').locator('[data-action="dead_letter.redrive"][data-outcome="done"]', { hasText: first }).waitFor(SEEN);
    const again = await deadLetterRow(`event:${orderProcessed.topic}:`, first);
    expect((await adminCall(`/admin/dead-letters/${encodeURIComponent(again)}`)).body).toMatchObject({ errorCode: 'events.invalid_data', group: 'order-service', payload: { id: envelope.id } });

    await byTestId(`discard-${again}`).click();
    await byTestId('discard-dialog').waitFor(SEEN);
    await byTestId('confirm-discard').click();
    await byTestId(`dead-letter-${again}`).waitFor({ ...SEEN, state: 'detached' });
    await byTestId('activity-list').locator('[data-action="dead_letter.discard"][data-outcome="done"]', { hasText: again }).waitFor(SEEN);
    expect((await adminCall(`/admin/dead-letters/${encodeURIComponent(again)}`)).status).toBe(404);
  });

  it('moves the orders chart when orders are placed', async () => {
    const chart = byTestId('chart-orders');
    await chart.scrollIntoViewIfNeeded();
    const before = Number(await chart.getAttribute('data-last-time'));
    const since = Math.floor(Date.now() / 1000);
    await Promise.all([placeOrder(), placeOrder(), placeOrder()]);
    // A point computed after the orders, counting orders placed in its last minute.
    let after: number | undefined;
    await expect
      .poll(async () => {
        const history = (await adminCall('/admin/history?minutes=5')).body as { times: number[]; series: Record<string, (number | null)[]> };
        after = history.times.at(-1);
        const placed = history.series['orders.placed']?.at(-1) ?? null;
        return after !== undefined && after > since && placed !== null && placed > 0;
      }, poll)
      .toBe(true);
    await page.waitForFunction(`Number(document.querySelector('[data-testid="chart-orders"]')?.getAttribute('data-last-time')) >= ${after}`, undefined, SEEN);
    expect(Number(await chart.getAttribute('data-last-time'))).toBeGreaterThan(before);
  });

  it('switches to the dark theme from the keyboard and back', async () => {
    await page.evaluate('window.scrollTo(0, 0)');
    const background = () => page.evaluate('getComputedStyle(document.documentElement).backgroundColor');
    const light = await background();
    await tabToAndPress(page.locator('nav a[href="#activity"]'), 'theme-toggle');
    await page.locator('html[data-theme="dark"]').waitFor({ ...SEEN, state: 'attached' });
    expect(await page.getByTestId('theme-toggle').getAttribute('aria-pressed')).toBe('true');
    expect(await background()).not.toBe(light);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dark-theme.png') });

    await page.keyboard.press('Enter');
    await page.locator('html[data-theme="light"]').waitFor({ ...SEEN, state: 'attached' });
    expect(await background()).toBe(light);
    expect(pageErrors).toEqual([]);
  });
});
