/** The operators' dashboard page (served by the dashboard on :3000 at `/`, its API under `/admin`). */
import type { ComponentChildren } from 'preact';
import { render } from 'preact';
import { useErrorBoundary } from 'preact/hooks';
import { describeError } from './api-client.ts';
import { App } from './app.tsx';
import { OperatorSessionKeeper } from './operator-session.ts';
import './styles.css';

/** The last resort: a failure outside the panels still leaves words on the screen, not a blank page. */
function PageErrorBoundary({ children }: { children: ComponentChildren }) {
  const [error] = useErrorBoundary((caught) => console.error('The dashboard page failed', caught));
  if (!error) return <>{children}</>;
  return (
    <main id="main" class="sign-in">
      <div class="message message-error" role="alert">
        <h1>The dashboard page failed</h1>
        <p>{describeError(error)}</p>
        <button type="button" onClick={() => location.reload()}>
          Reload the page
        </button>
      </div>
    </main>
  );
}

const root = document.getElementById('app');
if (root) {
  root.replaceChildren();
  render(
    <PageErrorBoundary>
      <App session={new OperatorSessionKeeper()} />
    </PageErrorBoundary>,
    root,
  );
}
