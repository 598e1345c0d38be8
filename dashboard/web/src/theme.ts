/**
 * Light and dark: the system's preference (`prefers-color-scheme`) unless the operator picked one
 * with the toggle (kept in `localStorage`). The stylesheet's colours use `light-dark()`, so setting
 * `color-scheme` through `data-theme` on <html> is all a switch takes.
 */
import { useCallback, useEffect, useState } from 'preact/hooks';

export type Theme = 'light' | 'dark';

const THEME_KEY = 'civildiy.dashboard.theme';
const darkQuery = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;

function storedChoice(): Theme | null {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return value === 'light' || value === 'dark' ? value : null;
  } catch {
    return null;
  }
}

function systemTheme(): Theme {
  return darkQuery?.matches ? 'dark' : 'light';
}

function applyChoice(choice: Theme | null): void {
  if (choice) document.documentElement.dataset['theme'] = choice;
  else delete document.documentElement.dataset['theme'];
}

/** The theme in force, and a toggle to the other one (which then sticks). */
export function useTheme(): { theme: Theme; toggle: () => void } {
  const [choice, setChoice] = useState<Theme | null>(() => {
    const stored = storedChoice();
    applyChoice(stored);
    return stored;
  });
  const [system, setSystem] = useState<Theme>(systemTheme);

  useEffect(() => {
    if (!darkQuery) return;
    const follow = () => setSystem(systemTheme());
    darkQuery.addEventListener('change', follow);
    return () => darkQuery.removeEventListener('change', follow);
  }, []);

  const theme = choice ?? system;
  const toggle = useCallback(() => {
    const next: Theme = theme === 'dark' ? 'light' : 'dark';
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch {
      // Storage disabled: the choice lasts as long as the page.
    }
    // Before the re-render: the charts read their colours from the stylesheet when they redraw.
    applyChoice(next);
    setChoice(next);
  }, [theme]);

  return { theme, toggle };
}
