/** The last hour as charts: orders, post → feed latency, search backlog, providers, gateway errors. */
import type { ChartHistory } from './dashboard-data.ts';
import { count, milliseconds, rate } from './format.ts';
import { Placeholder } from './panel.tsx';
import type { Theme } from './theme.ts';
import { TimeChart, type ChartSpec } from './time-chart.tsx';

const DASHED = [6, 4];
const DOTTED = [2, 3];

export const CHARTS: ChartSpec[] = [
  {
    name: 'orders',
    title: 'Orders per minute',
    unit: 'per minute',
    format: rate,
    lines: [
      { series: 'orders.placed', label: 'placed', colour: '--chart-blue' },
      { series: 'orders.confirmed', label: 'confirmed', colour: '--chart-green', dash: DASHED },
      { series: 'orders.rejected', label: 'rejected', colour: '--chart-red', dash: DOTTED },
    ],
  },
  {
    name: 'feed-latency',
    title: 'Post → feed latency',
    unit: 'latency',
    format: milliseconds,
    lines: [
      { series: 'feed.latency.p50', label: 'p50', colour: '--chart-blue' },
      { series: 'feed.latency.p99', label: 'p99', colour: '--chart-orange', dash: DASHED },
    ],
  },
  {
    name: 'search',
    title: 'Search index backlog and failed rows',
    unit: 'rows',
    format: count,
    lines: [
      { series: 'search.backlog', label: 'backlog', colour: '--chart-blue' },
      { series: 'search.failed', label: 'failed', colour: '--chart-red', dash: DASHED },
    ],
  },
  {
    name: 'providers',
    title: 'Provider calls, failures and open circuits',
    unit: 'per minute',
    rightUnit: 'open circuits',
    format: rate,
    lines: [
      { series: 'providers.calls', label: 'calls', colour: '--chart-blue' },
      { series: 'providers.failures', label: 'failures', colour: '--chart-red', dash: DASHED },
      { series: 'providers.open_circuits', label: 'open circuits', colour: '--chart-orange', dash: DOTTED, right: true },
    ],
  },
  {
    name: 'gateway',
    title: 'Gateway errors per minute',
    unit: 'per minute',
    format: rate,
    lines: [
      { series: 'gateway.4xx', label: '4xx', colour: '--chart-orange' },
      { series: 'gateway.5xx', label: '5xx', colour: '--chart-red', dash: DASHED },
    ],
  },
];

export function ChartsPanelBody({ history, error, theme, onRetry }: { history: ChartHistory; error: string | null; theme: Theme; onRetry: () => void }) {
  return (
    <>
      {error && (
        <Placeholder error onRetry={onRetry}>
          Could not read the last hour: {error}. New points still arrive live.
        </Placeholder>
      )}
      <div class="charts">
        {CHARTS.map((spec) => (
          <TimeChart key={spec.name} spec={spec} history={history} theme={theme} />
        ))}
      </div>
    </>
  );
}
