/** Operators' actions, newest first: read once, then pushed by the live stream (announced politely). */
import type { Activity } from './api-types.ts';
import { fullTime, timeOfDay } from './format.ts';
import { Placeholder } from './panel.tsx';

const ACTION_WORDS: Record<string, string> = {
  'dead_letter.redrive': 'redrove',
  'dead_letter.discard': 'discarded',
  sign_in: 'signed in',
};

const OUTCOME_WORDS: Record<string, string> = {
  done: 'done',
  not_found: 'not found',
  already_redriven: 'already redriven',
  failed: 'failed',
};

/** The list keeps this many. */
export const ACTIVITY_LIMIT = 100;

/** Adds a pushed activity to the list (an activity already held is not repeated). */
export function addActivity(list: Activity[], activity: Activity): Activity[] {
  if (!activity || typeof activity.id !== 'string') return list;
  return [activity, ...list.filter((held) => held.id !== activity.id)].slice(0, ACTIVITY_LIMIT);
}

export function ActivityPanelBody({ activities, error, onRetry }: { activities: Activity[] | null; error: string | null; onRetry: () => void }) {
  return (
    <>
      {error && (
        <Placeholder error onRetry={onRetry}>
          Could not read the activity: {error}
        </Placeholder>
      )}
      {activities === null && !error && <Placeholder>Loading…</Placeholder>}
      {activities !== null && activities.length === 0 && <Placeholder>No operator actions yet.</Placeholder>}
      {/* Always in the page, so that additions are announced. */}
      <ol class="activity-list" aria-live="polite" aria-relevant="additions" aria-label="Operator actions, newest first" data-testid="activity-list">
        {(activities ?? []).map((activity) => (
          <li key={activity.id} data-testid={`activity-${activity.id}`} data-action={activity.action} data-outcome={activity.outcome}>
            <time dateTime={activity.at} title={fullTime(activity.at)}>
              {timeOfDay(activity.at)}
            </time>
            <span class="activity-text">
              <strong>{activity.actor?.username ?? activity.actor?.id ?? 'someone'}</strong>
              {activity.actor?.via === 'cli' ? ' (CLI)' : ''} {ACTION_WORDS[activity.action] ?? activity.action} <code>{activity.target}</code>
            </span>
            <span class={`outcome outcome-${activity.outcome}`}>{OUTCOME_WORDS[activity.outcome] ?? activity.outcome}</span>
          </li>
        ))}
      </ol>
    </>
  );
}
