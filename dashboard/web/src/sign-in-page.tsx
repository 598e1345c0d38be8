/** Sign in with an operator account (auth-service's credentials, through the dashboard). */
import { useState } from 'preact/hooks';
import { signInErrorMessage, type OperatorSessionKeeper } from './operator-session.ts';
import type { Theme } from './theme.ts';
import { ThemeToggle } from './theme-toggle.tsx';

export function SignInPage({ session, notice, theme, onToggleTheme }: { session: OperatorSessionKeeper; notice: string | null; theme: Theme; onToggleTheme: () => void }) {
  const [login, setLogin] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await session.signIn({ login: login.trim(), password });
    } catch (caught) {
      setError(signInErrorMessage(caught));
      setBusy(false);
    }
  }

  return (
    <div class="sign-in-page">
      <div class="sign-in-theme">
        <ThemeToggle theme={theme} onToggle={onToggleTheme} />
      </div>
      <main id="main" class="sign-in">
        <form class="sign-in-form" onSubmit={(event) => void submit(event)} aria-labelledby="sign-in-title" data-testid="sign-in-form">
          <h1 id="sign-in-title">CivilDIY operations</h1>
          <p class="muted">Sign in with an operator account.</p>
          {notice && (
            <p class="message message-info" role="status" data-testid="sign-in-notice">
              {notice}
            </p>
          )}
          <label for="sign-in-login">Email or username</label>
          <input
            id="sign-in-login"
            name="login"
            type="text"
            autocomplete="username"
            autocapitalize="none"
            spellcheck={false}
            required
            autofocus
            value={login}
            onInput={(event) => setLogin(event.currentTarget.value)}
            data-testid="sign-in-login"
          />
          <label for="sign-in-password">Password</label>
          <input
            id="sign-in-password"
            name="password"
            type="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(event) => setPassword(event.currentTarget.value)}
            data-testid="sign-in-password"
          />
          <div aria-live="assertive">
            {error && (
              <p class="message message-error" data-testid="sign-in-error">
                {error}
              </p>
            )}
          </div>
          <button type="submit" class="primary" disabled={busy} data-testid="sign-in-submit">
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
      </main>
    </div>
  );
}
