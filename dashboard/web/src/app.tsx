/** The whole page: the sign-in form until an operator is signed in, then the operations page. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { DashboardApi } from './dashboard-api.ts';
import { OperationsPage } from './operations-page.tsx';
import type { OperatorSessionKeeper, SessionState } from './operator-session.ts';
import { SignInPage } from './sign-in-page.tsx';
import { useTheme } from './theme.ts';

export function App({ session }: { session: OperatorSessionKeeper }) {
  const [state, setState] = useState<SessionState>(session.state);
  const { theme, toggle } = useTheme();
  const api = useMemo(() => new DashboardApi(session), [session]);

  useEffect(() => {
    const unsubscribe = session.subscribe(setState);
    void session.restore();
    return unsubscribe;
  }, [session]);

  if (state.status === 'restoring') {
    return (
      <main id="main" class="sign-in">
        <p role="status">Restoring your session…</p>
      </main>
    );
  }
  if (state.status === 'signed-out') return <SignInPage session={session} notice={state.notice} theme={theme} onToggleTheme={toggle} />;
  return <OperationsPage api={api} user={state.user} theme={theme} onToggleTheme={toggle} onSignOut={() => session.signOut()} />;
}
