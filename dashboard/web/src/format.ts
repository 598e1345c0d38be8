/** How numbers, sizes, durations and times read on the page. A missing value reads "—". */

export const MISSING = '—';

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateAndClock = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

function present(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

export function count(value: number | null | undefined): string {
  return present(value) ? integer.format(value) : MISSING;
}

/** Rates per minute keep one decimal (0.2/min is not 0). */
export function rate(value: number | null | undefined): string {
  return present(value) ? decimal.format(value) : MISSING;
}

export function bytes(value: number | null | undefined): string {
  if (!present(value)) return MISSING;
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit++;
  }
  return `${unit === 0 ? integer.format(size) : decimal.format(size)} ${units[unit]}`;
}

/** 45 s, 12 min 3 s, 3 h 12 min, 2 d 4 h. */
export function duration(seconds: number | null | undefined): string {
  if (!present(seconds)) return MISSING;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3_600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)} h ${Math.floor((s % 3_600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3_600)} h`;
}

export function milliseconds(value: number | null | undefined): string {
  if (!present(value)) return MISSING;
  return value >= 1_000 ? `${decimal.format(value / 1_000)} s` : `${integer.format(value)} ms`;
}

function date(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const parsed = new Date(iso);
  return Number.isNaN(parsed.getTime()) ? null : parsed;
}

/** The time of day (today's events); the full date sits in the `title`/`dateTime`. */
export function timeOfDay(iso: string | null | undefined): string {
  const parsed = date(iso);
  return parsed ? clock.format(parsed) : MISSING;
}

export function fullTime(iso: string | null | undefined): string {
  const parsed = date(iso);
  return parsed ? dateAndClock.format(parsed) : MISSING;
}
