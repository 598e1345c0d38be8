/** Light or dark, whatever the system prefers: a toggle button (pressed = dark). */
import type { Theme } from './theme.ts';

export function ThemeToggle({ theme, onToggle }: { theme: Theme; onToggle: () => void }) {
  return (
    <button type="button" class="theme-toggle" aria-pressed={theme === 'dark'} onClick={onToggle} data-testid="theme-toggle">
      <span aria-hidden="true">{theme === 'dark' ? '☾' : '☀'}</span> Dark theme
    </button>
  );
}
