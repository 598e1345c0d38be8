/** The page's header: where am I, is it live, who is signed in, theme, sign out. */
import type { LiveState } from './live-updates.ts';
import { timeOfDay } from './format.ts';
import type { Theme } from './theme.ts';
import { ThemeToggle } from './theme-toggle.tsx';

const LIVE_WORDS: Record<LiveState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  stopped: 'Not updating',
};

export function LiveBadge({ state, error, updatedAt }: { state: LiveState; error: string | null; updatedAt: string | null }) {
  return (
    <p class={`live-badge live-${state}`} role="status" data-testid="live-state" data-state={state} title={error ?? undefined}>
      <span class="live-mark" aria-hidden="true" />
      {LIVE_WORDS[state]}
      {updatedAt && <span class="muted"> · updated {timeOfDay(updatedAt)}</span>}
    </p>
  );
}

const SECTIONS = [
  ['services', 'Services'],
  ['queues', 'Queues'],
  ['streams', 'Streams'],
  ['dead-letters', 'Dead letters'],
  ['charts', 'Last hour'],
  ['activity', 'Activity'],
] as const;

export interface TopBarProps {
  user: { id: string; username: string | null };
  live: { state: LiveState; error: string | null };
  updatedAt: string | null;
  theme: Theme;
  onToggleTheme: () => void;
  onSignOut: () => void;
}

export function TopBar({ user, live, updatedAt, theme, onToggleTheme, onSignOut }: TopBarProps) {
  return (
    <header class="top-bar">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <h1 class="brand">CivilDIY operations</h1>
      <nav aria-label="Sections">
        <ul>
          {SECTIONS.map(([id, label]) => (
            <li key={id}>
              <a href={`#${id}`}>{label}</a>
            </li>
          ))}
        </ul>
      </nav>
      <LiveBadge state={live.state} error={live.error} updatedAt={updatedAt} />
      <p class="user" data-testid="signed-in-user">
        {user.username ?? user.id}
      </p>
      <ThemeToggle theme={theme} onToggle={onToggleTheme} />
      <button type="button" onClick={onSignOut} data-testid="sign-out">
        Sign out
      </button>
    </header>
  );
}
