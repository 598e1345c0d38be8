/**
 * Parsing of raw Redis Streams replies (RESP2 arrays, as ioredis' `call` returns them) and the
 * stream id arithmetic the adapter needs. Internal to the Redis Streams adapter.
 */

/** One stream entry; `fields` is `null` for an entry deleted while pending (Redis 6.2 XAUTOCLAIM). */
export interface StreamEntry {
  id: string;
  fields: Record<string, string> | null;
}

/** `[k1, v1, k2, v2, …]` → `{ k1: v1, … }`. */
export function fieldsToRecord(raw: unknown): Record<string, string> {
  const record: Record<string, string> = {};
  if (!Array.isArray(raw)) return record;
  for (let i = 0; i + 1 < raw.length; i += 2) record[String(raw[i])] = String(raw[i + 1]);
  return record;
}

/** `{ k1: v1, … }` → `[k1, v1, …]` (XADD arguments). */
export function recordToFields(record: Record<string, string>): string[] {
  return Object.entries(record).flat();
}

/** `[[id, [fields]] | [id, null], …]` (XRANGE, XAUTOCLAIM, one stream of XREADGROUP). */
export function parseEntries(raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((item: unknown) => {
    const [id, fields] = item as [unknown, unknown];
    return { id: String(id), fields: Array.isArray(fields) ? fieldsToRecord(fields) : null };
  });
}

/** The XREADGROUP reply `[[key, entries], …] | null`. */
export function parseReadReply(raw: unknown): { stream: string; entries: StreamEntry[] }[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((item: unknown) => {
    const [stream, entries] = item as [unknown, unknown];
    return { stream: String(stream), entries: parseEntries(entries) };
  });
}

/** An XINFO reply map (`[name, value, …]`) as an object. */
export function infoToRecord(raw: unknown): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  if (!Array.isArray(raw)) return record;
  for (let i = 0; i + 1 < raw.length; i += 2) record[String(raw[i])] = raw[i + 1];
  return record;
}

const MAX_SEQUENCE = '18446744073709551615';

/** Stream ids are `<ms>-<seq>`; `<ms>` alone means `<ms>-0`. */
export const STREAM_ID = /^\d+(-\d+)?$/;

/**
 * The last-delivered id that makes a group read every entry added at or after `time`: the largest
 * id of the millisecond before it (entries with a larger id are delivered next).
 */
export function idBefore(time: Date): string {
  const ms = time.getTime();
  if (!Number.isFinite(ms)) throw new TypeError('Invalid date');
  return ms <= 0 ? '0-0' : `${ms - 1}-${MAX_SEQUENCE}`;
}

/** The error message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
