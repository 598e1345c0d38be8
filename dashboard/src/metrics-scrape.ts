/** One value of a scraped metric: a counter, a gauge, or one `_bucket` / `_sum` / `_count` of a histogram. */
export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

/** The metric families the dashboard reads from the services' `/metrics` (the rest is dropped at once). */
export const WATCHED_FAMILIES: ReadonlySet<string> = new Set([
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'nodejs_heap_size_used_bytes',
  'civildiy_tasks_total',
  'civildiy_task_duration_seconds',
  'civildiy_events_consumed_total',
  'civildiy_orders_total',
  'feed_event_latency_seconds',
  'search_index_pending_rows',
  'search_index_claimed_rows',
  'search_index_failed_rows',
  'civildiy_provider_calls_total',
  'civildiy_provider_circuit_state',
  'civildiy_gateway_requests_total',
]);

/** The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` series belong to the histogram. */
function familyOf(name: string, families: ReadonlySet<string>): string | undefined {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && families.has(base) ? base : undefined;
}

const SAMPLE_NAME = /^[A-Za-z_:][A-Za-z0-9_:]*/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/**
 * Parses one sample line (`name{label="value",…} value [timestamp]`) of the Prometheus text format;
 * `undefined` for a line that is not one.
 */
export function parseSampleLine(line: string): Sample | undefined {
  const name = SAMPLE_NAME.exec(line)?.[0];
  if (!name) return undefined;
  let at = name.length;
  const labels: Record<string, string> = {};
  if (line[at] === '{') {
    at++;
    for (;;) {
      while (line[at] === ' ' || line[at] === ',') at++;
      if (line[at] === '}') {
        at++;
        break;
      }
      const label = LABEL_NAME.exec(line.slice(at))?.[0];
      if (!label || line[at + label.length] !== '=' || line[at + label.length + 1] !== '"') return undefined;
      at += label.length + 2;
      let value = '';
      for (;;) {
        const char = line[at++];
        if (char === undefined) return undefined;
        if (char === '"') break;
        if (char === '\\') {
          const escaped = line[at++];
          value += escaped === 'n' ? '\n' : (escaped ?? '');
        } else {
          value += char;
        }
      }
      labels[label] = value;
    }
  }
  const [text] = line.slice(at).trim().split(/\s+/);
  if (text === undefined || text === '') return undefined;
  const value = text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
  return Number.isNaN(value) && text !== 'NaN' ? undefined : { name, labels, value };
}

/**
 * The samples of the `families` wanted in a Prometheus text exposition; histograms as Prometheus
 * stores them: `<name>_bucket` with an `le` label, `<name>_sum`, `<name>_count`.
 *
 * Hand-written for the sample lines prom-client writes: `parse-prometheus-text-format`, the npm
 * parser, folds every series of a labelled histogram into one (and drops their labels, sums and counts).
 */
export function parseMetrics(text: string, families: ReadonlySet<string> = WATCHED_FAMILIES): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const name = SAMPLE_NAME.exec(line)?.[0];
    if (!name || familyOf(name, families) === undefined) continue;
    const sample = parseSampleLine(line);
    if (sample && Number.isFinite(sample.value)) samples.push(sample);
  }
  return samples;
}

/**
 * Reads and parses `url` (a `/metrics` endpoint) within `timeoutMs`.
 * @throws Error saying why in words (status, timeout, connection refused, unparsable text).
 */
export async function scrapeMetrics(url: string, timeoutMs: number, families: ReadonlySet<string> = WATCHED_FAMILIES): Promise<Sample[]> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`${url} answered ${response.status}`);
  }
  const text = await response.text();
  return parseMetrics(text, families);
}

/** Why a `fetch` failed, in words an operator can act on ("connect ECONNREFUSED …", not "fetch failed"). */
export function fetchFailureReason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (error instanceof Error) return error.cause instanceof Error ? error.cause.message : error.message;
  return String(error);
}
