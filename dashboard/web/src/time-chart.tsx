/**
 * One uPlot chart of some series over the last hour. The canvas takes its colours from the
 * stylesheet's custom properties (read again when the theme changes), lines differ by dash as well
 * as colour, and the latest values are written out under the chart for those who cannot see it.
 * On the figure, `data-points` counts the points shown and `data-last-time` is the newest point's
 * time (unix seconds): a test watches a chart move by either (the count stops growing once the
 * chart holds a full hour).
 */
import { useEffect, useMemo, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { SeriesName } from './api-types.ts';
import type { ChartHistory } from './dashboard-data.ts';
import { MISSING, timeOfDay } from './format.ts';
import type { Theme } from './theme.ts';

export interface ChartLine {
  series: SeriesName;
  label: string;
  /** A custom property of the stylesheet, e.g. `--chart-blue`. */
  colour: string;
  dash?: number[];
  /** The right-hand axis (a quantity of another kind). */
  right?: boolean;
}

export interface ChartSpec {
  name: string;
  title: string;
  /** The unit of the left axis, e.g. "per minute", "ms". */
  unit: string;
  lines: ChartLine[];
  /** The unit of the right axis, when a line uses it. */
  rightUnit?: string;
  format: (value: number) => string;
}

const HEIGHT = 170;

/** A custom property resolved to a colour the canvas understands (`light-dark()` included). */
function cssColour(host: HTMLElement, property: string): string {
  const probe = document.createElement('span');
  probe.style.color = `var(${property})`;
  probe.hidden = true;
  host.append(probe);
  const colour = getComputedStyle(probe).color;
  probe.remove();
  return colour;
}

function chartData(history: ChartHistory, spec: ChartSpec): uPlot.AlignedData {
  return [history.times, ...spec.lines.map((line) => history.series[line.series] ?? [])];
}

function options(spec: ChartSpec, host: HTMLElement, width: number): uPlot.Options {
  const axisColour = cssColour(host, '--muted');
  const gridColour = cssColour(host, '--grid');
  const fromZero: uPlot.Range.Function = (_plot, _min, max) => [0, max > 0 ? max * 1.1 : 5];
  const axis = { stroke: axisColour, grid: { stroke: gridColour, width: 1 }, ticks: { stroke: gridColour, width: 1 } };
  // Whole-number steps: the values are counts, rates per minute and milliseconds, shown rounded, so
  // a step of 0.5 printed "0, 1, 1".
  const incrs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 1_000_000];
  const axes: uPlot.Axis[] = [
    axis,
    { ...axis, label: spec.unit, size: 56, incrs, values: (_plot, values) => values.map((value) => spec.format(value)) },
  ];
  if (spec.rightUnit) axes.push({ ...axis, scale: 'right', side: 1, label: spec.rightUnit, size: 48, incrs, grid: { show: false } });
  return {
    width,
    height: HEIGHT,
    scales: { x: { time: true }, y: { range: fromZero }, right: { range: fromZero } },
    axes,
    series: [
      { value: (_plot, value) => (value === null ? MISSING : timeOfDay(new Date(value * 1000).toISOString())) },
      ...spec.lines.map(
        (line): uPlot.Series => ({
          label: line.label,
          stroke: cssColour(host, line.colour),
          width: 2,
          dash: line.dash,
          scale: line.right ? 'right' : 'y',
          points: { show: false },
          value: (_plot, value) => (value === null || value === undefined ? MISSING : spec.format(value)),
        }),
      ),
    ],
    // The legend names the lines; the latest values are written under the chart.
    legend: { live: false },
  };
}

function latestSummary(history: ChartHistory, spec: ChartSpec): string {
  const last = history.times.length - 1;
  const time = history.times[last];
  if (time === undefined) return 'No data yet.';
  const values = spec.lines.map((line) => {
    const value = history.series[line.series]?.[last];
    return `${line.label} ${value === null || value === undefined ? MISSING : spec.format(value)}`;
  });
  return `Latest (${timeOfDay(new Date(time * 1000).toISOString())}): ${values.join(', ')}.`;
}

export function TimeChart({ spec, history, theme }: { spec: ChartSpec; history: ChartHistory; theme: Theme }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useMemo(() => chartData(history, spec), [history, spec]);
  const latestData = useRef(data);
  latestData.current = data;

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const width = () => Math.max(element.clientWidth, 200);
    let chart: uPlot;
    try {
      chart = new uPlot(options(spec, element, width()), latestData.current, element);
    } catch (error) {
      console.error(`The ${spec.name} chart could not be drawn`, error);
      return;
    }
    plot.current = chart;
    const resize = new ResizeObserver(() => {
      if (chart.width !== width()) chart.setSize({ width: width(), height: HEIGHT });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
  }, [spec, theme]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  const titleId = `chart-${spec.name}-title`;
  return (
    <figure class="chart" data-testid={`chart-${spec.name}`} data-points={history.times.length} data-last-time={history.times.at(-1) ?? ''} aria-labelledby={titleId}>
      <figcaption id={titleId}>{spec.title}</figcaption>
      <div ref={host} class="chart-canvas" role="img" aria-label={`Chart: ${spec.title}, the last hour`} />
      <p class="chart-summary muted">{latestSummary(history, spec)}</p>
    </figure>
  );
}
