/**
 * A titled section of the page. A rendering error inside stays inside: the panel shows it with a
 * way to try again, and the rest of the page keeps working.
 */
import type { ComponentChildren } from 'preact';
import { useErrorBoundary } from 'preact/hooks';
import { describeError } from './api-client.ts';

export interface PanelProps {
  id: string;
  title: string;
  /** Shown beside the title (counts, buttons). */
  aside?: ComponentChildren;
  class?: string;
  children: ComponentChildren;
}

export function Panel({ id, title, aside, class: className, children }: PanelProps) {
  const [error, reset] = useErrorBoundary((caught) => console.error(`The ${title} panel failed to render`, caught));
  return (
    <section id={id} class={`panel ${className ?? ''}`} aria-labelledby={`${id}-title`}>
      <header class="panel-header">
        <h2 id={`${id}-title`}>{title}</h2>
        {aside && <div class="panel-aside">{aside}</div>}
      </header>
      {error ? (
        <div class="message message-error" role="alert">
          <p>This panel could not be shown: {describeError(error)}</p>
          <button type="button" onClick={reset}>
            Try again
          </button>
        </div>
      ) : (
        children
      )}
    </section>
  );
}

/** A message in place of data: loading, empty, or failed (with a retry). */
export function Placeholder({ children, error, onRetry }: { children: ComponentChildren; error?: boolean; onRetry?: () => void }) {
  return (
    <div class={`placeholder ${error ? 'message message-error' : ''}`} role={error ? 'alert' : undefined}>
      <p>{children}</p>
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}
