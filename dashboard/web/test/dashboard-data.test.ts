import { describe, expect, it } from 'vitest';
import type { HistoryPoint } from '../src/api-types.ts';
import { appendPoint, emptyHistory, mergeHistory, normaliseDeadLetterList, normaliseHistory, normaliseOverview, SERIES_NAMES } from '../src/dashboard-data.ts';
import { refreshDelayMs } from '../src/operator-session.ts';

function point(time: number, value: number | null): HistoryPoint {
  return { time, values: Object.fromEntries(SERIES_NAMES.map((name) => [name, value])) as HistoryPoint['values'] };
}

function historyOf(times: number[]) {
  return normaliseHistory({ stepSeconds: 60, times, series: Object.fromEntries(SERIES_NAMES.map((name) => [name, times.map((time) => time)])) });
}

describe('the charts\' history', () => {
  it('grows by one point for each newer live point, every series aligned with the times', () => {
    const history = appendPoint(appendPoint(emptyHistory(), point(60, 1)), point(120, null));
    expect(history.times).toEqual([60, 120]);
    for (const name of SERIES_NAMES) expect(history.series[name]).toEqual([1, null]);
  });

  it('replaces a point of a time it already holds and ignores an older one', () => {
    const history = appendPoint(appendPoint(appendPoint(emptyHistory(), point(120, 1)), point(120, 2)), point(60, 3));
    expect(history.times).toEqual([120]);
    expect(history.series['orders.placed']).toEqual([2]);
  });

  it('keeps only the last hour, so a full chart slides instead of growing', () => {
    const full = historyOf(Array.from({ length: 60 }, (_, index) => 60 * (index + 1)));
    const slid = appendPoint(full, point(60 * 61, 7));
    expect(slid.times).toHaveLength(60);
    expect(slid.times[0]).toBe(120);
    expect(slid.times.at(-1)).toBe(60 * 61);
  });

  it('reads a history the server left incomplete: missing series are empty, bad times dropped', () => {
    const history = normaliseHistory({ times: [60, 'x', 180], series: { 'orders.placed': [1, 2] } });
    expect(history.times).toEqual([60, 180]);
    expect(history.series['orders.placed']).toEqual([1, null]);
    expect(history.series['gateway.5xx']).toEqual([null, null]);
    expect(normaliseHistory(null).times).toEqual([]);
  });

  it('keeps the live points that arrived before the history answered', () => {
    const live = appendPoint(emptyHistory(), point(240, 9));
    const merged = mergeHistory(historyOf([60, 120, 180]), live);
    expect(merged.times).toEqual([60, 120, 180, 240]);
    expect(merged.series['orders.placed'].at(-1)).toBe(9);
  });
});

describe('what the page holds of the server\'s answers', () => {
  it('turns an overview with missing parts into empty lists and zero counts', () => {
    const overview = normaliseOverview({ services: [{ name: 'a' }], queues: [{ queue: 'orders' }], streams: [{ topic: 'posts-events' }] });
    expect(overview.services[0]?.failingChecks).toEqual([]);
    expect(overview.queues[0]?.counts).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 });
    expect(overview.queues[0]?.tasks).toEqual([]);
    expect(overview.streams[0]?.groups).toEqual([]);
    expect(overview.deadLetters).toEqual({ tasks: 0, events: 0 });
    expect(normaliseOverview('nonsense').services).toEqual([]);
  });

  it('drops dead letters without an id rather than failing on them', () => {
    const list = normaliseDeadLetterList({ items: [{ id: 'task:orders:1' }, null, { kind: 'task' }] });
    expect(list.items.map((item) => item.id)).toEqual(['task:orders:1']);
    expect(list.total).toBe(1);
  });
});

describe('the session', () => {
  it('refreshes an access token a fifth of its life before it expires, at most a minute before', () => {
    expect(refreshDelayMs(900)).toBe(840_000);
    expect(refreshDelayMs(60)).toBe(48_000);
    expect(refreshDelayMs(0)).toBe(1_000);
  });
});
