/**
 * What the page holds of the server's answers. The page does not validate them with zod (that
 * would ship the server's schemas and zod to the browser), so this fills what a server in the
 * middle of an upgrade may leave out: the page shows "no data" rather than going blank.
 */
import { SERIES } from '../../src/series.ts';
import type { DeadLetterDetail, DeadLetterList, History, HistoryPoint, Overview, SeriesName } from './api-types.ts';

/** The charted series, in the contract's order. */
export const SERIES_NAMES: readonly SeriesName[] = SERIES;

/** The charts show this much. */
export const HISTORY_SECONDS = 3_600;

function arrayOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

const NO_COUNTS: Overview['queues'][number]['counts'] = { waiting: 0, active: 0, delayed: 0, failed: 0, completed: 0 };

export function normaliseOverview(raw: unknown): Overview {
  const overview = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<Overview>;
  return {
    generatedAt: typeof overview.generatedAt === 'string' ? overview.generatedAt : new Date().toISOString(),
    services: arrayOf<Overview['services'][number]>(overview.services).map((service) => ({
      ...service,
      failingChecks: arrayOf(service.failingChecks),
    })),
    queues: arrayOf<Overview['queues'][number]>(overview.queues).map((queue) => ({
      ...queue,
      counts: { ...NO_COUNTS, ...queue.counts },
      tasks: arrayOf(queue.tasks),
    })),
    streams: arrayOf<Overview['streams'][number]>(overview.streams).map((stream) => ({ ...stream, groups: arrayOf(stream.groups) })),
    deadLetters: { tasks: numberOr(overview.deadLetters?.tasks, 0), events: numberOr(overview.deadLetters?.events, 0) },
  };
}

/** Charts' data: times and each series aligned with them. */
export interface ChartHistory {
  times: number[];
  series: Record<SeriesName, (number | null)[]>;
}

export function emptyHistory(): ChartHistory {
  return { times: [], series: Object.fromEntries(SERIES_NAMES.map((name) => [name, []])) as unknown as ChartHistory['series'] };
}

export function normaliseHistory(raw: unknown): ChartHistory {
  const history = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<History>;
  const times = arrayOf<unknown>(history.times).map((time) => numberOr(time, Number.NaN));
  const result = emptyHistory();
  result.times = times;
  for (const name of SERIES_NAMES) {
    const values = arrayOf<unknown>(history.series?.[name]);
    result.series[name] = times.map((_, index) => numberOrNull(values[index]));
  }
  return dropOld(dropBadTimes(result));
}

function dropBadTimes(history: ChartHistory): ChartHistory {
  if (history.times.every((time) => Number.isFinite(time))) return history;
  const keep = history.times.map((time) => Number.isFinite(time));
  return slice(history, (index) => keep[index] === true);
}

function slice(history: ChartHistory, keep: (index: number) => boolean): ChartHistory {
  const result = emptyHistory();
  result.times = history.times.filter((_, index) => keep(index));
  for (const name of SERIES_NAMES) result.series[name] = history.series[name].filter((_, index) => keep(index));
  return result;
}

/** Keeps the last hour before the newest point. */
function dropOld(history: ChartHistory): ChartHistory {
  const newest = history.times.at(-1);
  if (newest === undefined) return history;
  const first = history.times.findIndex((time) => time > newest - HISTORY_SECONDS);
  return first <= 0 ? history : slice(history, (index) => index >= first);
}

/** Adds a live point; a point for a time already held replaces it, an older one is ignored. */
export function appendPoint(history: ChartHistory, raw: HistoryPoint): ChartHistory {
  const time = numberOrNull(raw?.time);
  if (time === null) return history;
  const newest = history.times.at(-1);
  if (newest !== undefined && time < newest) return history;
  const replace = newest === time;
  const result = emptyHistory();
  result.times = replace ? history.times : [...history.times, time];
  for (const name of SERIES_NAMES) {
    const value = numberOrNull(raw.values?.[name]);
    result.series[name] = replace ? [...history.series[name].slice(0, -1), value] : [...history.series[name], value];
  }
  return dropOld(result);
}

/** `base` with the points of `newer` that come after its last one (live points that beat the history's answer). */
export function mergeHistory(base: ChartHistory, newer: ChartHistory): ChartHistory {
  let merged = base;
  newer.times.forEach((time, index) => {
    const values = Object.fromEntries(SERIES_NAMES.map((name) => [name, newer.series[name][index] ?? null])) as HistoryPoint['values'];
    merged = appendPoint(merged, { time, values });
  });
  return merged;
}

export function normaliseDeadLetterList(raw: unknown): DeadLetterList {
  const list = (typeof raw === 'object' && raw !== null ? raw : {}) as Partial<DeadLetterList>;
  const items = arrayOf<DeadLetterList['items'][number]>(list.items).filter((item) => typeof item?.id === 'string');
  return { total: numberOr(list.total, items.length), items };
}

export function normaliseDeadLetterDetail(raw: DeadLetterDetail): DeadLetterDetail {
  return {
    ...raw,
    contract: { status: raw.contract?.status ?? 'unknown', issues: arrayOf(raw.contract?.issues) },
    attemptsLog: arrayOf(raw.attemptsLog),
    correlationId: raw.correlationId ?? null,
  };
}
