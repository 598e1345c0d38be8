/**
 * The operations page: what the overview says (services, queues, streams), dead letters, the last
 * hour and the activity, kept current by the live stream.
 */
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ACTIVITY_LIMIT, ActivityPanelBody, addActivity } from './activity-panel.tsx';
import { describeError } from './api-client.ts';
import type { Activity, OperatorSession, Overview } from './api-types.ts';
import { ChartsPanelBody } from './charts-panel.tsx';
import type { DashboardApi } from './dashboard-api.ts';
import { appendPoint, emptyHistory, HISTORY_SECONDS, mergeHistory, normaliseHistory, normaliseOverview, type ChartHistory } from './dashboard-data.ts';
import { DeadLettersPanelBody } from './dead-letters-panel.tsx';
import { count } from './format.ts';
import { followLiveUpdates, type LiveState } from './live-updates.ts';
import { Panel } from './panel.tsx';
import { QueuesPanelBody } from './queues-panel.tsx';
import { servicesSummary, ServicesPanelBody } from './services-panel.tsx';
import { StreamsPanelBody } from './streams-panel.tsx';
import type { Theme } from './theme.ts';
import { TopBar } from './top-bar.tsx';

export interface OperationsPageProps {
  api: DashboardApi;
  user: OperatorSession['user'];
  theme: Theme;
  onToggleTheme: () => void;
  onSignOut: () => void;
}

export function OperationsPage({ api, user, theme, onToggleTheme, onSignOut }: OperationsPageProps) {
  const [overview, setOverview] = useState<Overview | null>(null);
  const [overviewError, setOverviewError] = useState<string | null>(null);
  const [history, setHistory] = useState<ChartHistory>(emptyHistory);
  const [historyError, setHistoryError] = useState<string | null>(null);
  const [activities, setActivities] = useState<Activity[] | null>(null);
  const [activityError, setActivityError] = useState<string | null>(null);
  const [live, setLive] = useState<{ state: LiveState; error: string | null }>({ state: 'connecting', error: null });

  const loadOverview = useCallback(() => {
    api.overview().then(
      (answer) => {
        // A live overview may have arrived first: keep the newer one.
        setOverview((current) => (current && current.generatedAt > answer.generatedAt ? current : normaliseOverview(answer)));
        setOverviewError(null);
      },
      (error: unknown) => setOverviewError(describeError(error)),
    );
  }, [api]);

  const loadHistory = useCallback(() => {
    api.history(HISTORY_SECONDS / 60).then(
      (answer) => {
        // Points that arrived live while the history was on its way are added on top.
        setHistory((live) => mergeHistory(normaliseHistory(answer), live));
        setHistoryError(null);
      },
      (error: unknown) => setHistoryError(describeError(error)),
    );
  }, [api]);

  const loadActivity = useCallback(() => {
    api.activity().then(
      (answer) => {
        // Activities pushed while the list was on its way stay on top, newest first.
        setActivities((live) => [...(live ?? [])].reverse().reduce(addActivity, answer.slice(0, ACTIVITY_LIMIT)));
        setActivityError(null);
      },
      (error: unknown) => setActivityError(describeError(error)),
    );
  }, [api]);

  useEffect(() => {
    loadOverview();
    loadHistory();
    loadActivity();
  }, [loadOverview, loadHistory, loadActivity]);

  useEffect(() => {
    const stop = new AbortController();
    void followLiveUpdates(
      api.session,
      {
        onEvent(event) {
          if (event.type === 'overview') {
            setOverview(normaliseOverview(event.data));
            setOverviewError(null);
          } else if (event.type === 'point') setHistory((current) => appendPoint(current, event.data));
          else setActivities((current) => addActivity(current ?? [], event.data));
        },
        onState(state, detail) {
          setLive({ state, error: detail.error ?? null });
        },
      },
      stop.signal,
    );
    return () => stop.abort();
  }, [api]);

  const sources = useMemo(() => [...(overview?.queues.map((queue) => queue.queue) ?? []), ...(overview?.streams.map((stream) => stream.topic) ?? [])], [overview]);
  const deadLetterKey = `${overview?.deadLetters.tasks ?? ''}:${overview?.deadLetters.events ?? ''}:${activities?.[0]?.id ?? ''}`;
  const overviewPlaceholderError = overview === null && overviewError;

  return (
    <>
      <TopBar user={user} live={live} updatedAt={overview?.generatedAt ?? null} theme={theme} onToggleTheme={onToggleTheme} onSignOut={onSignOut} />
      <main id="main" class="layout" tabIndex={-1}>
        <div class="main-column">
          {overviewPlaceholderError && (
            <div class="message message-error" role="alert">
              <p>Could not read the overview: {overviewError}</p>
              <button type="button" onClick={loadOverview}>
                Try again
              </button>
            </div>
          )}
          <Panel id="services" title="Services" aside={<span class="muted">{servicesSummary(overview?.services ?? null)}</span>}>
            <ServicesPanelBody services={overview?.services ?? null} />
          </Panel>
          <Panel id="queues" title="Task queues">
            <QueuesPanelBody queues={overview?.queues ?? null} />
          </Panel>
          <Panel id="streams" title="Event streams">
            <StreamsPanelBody streams={overview?.streams ?? null} />
          </Panel>
          <Panel
            id="dead-letters"
            title="Dead letters"
            aside={
              overview && (
                <span class="muted" data-testid="dead-letter-counts">
                  {count(overview.deadLetters.tasks)} tasks · {count(overview.deadLetters.events)} events
                </span>
              )
            }
          >
            <DeadLettersPanelBody api={api} changeKey={deadLetterKey} sources={sources} />
          </Panel>
          <Panel id="charts" title="The last hour">
            <ChartsPanelBody history={history} error={historyError} theme={theme} onRetry={loadHistory} />
          </Panel>
        </div>
        <aside class="side-column" aria-label="Activity">
          <Panel id="activity" title="Activity">
            <ActivityPanelBody activities={activities} error={activityError} onRetry={loadActivity} />
          </Panel>
        </aside>
      </main>
    </>
  );
}
