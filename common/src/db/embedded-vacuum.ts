import { sql } from 'drizzle-orm';
import type { Logger } from '../logging/index.ts';
import type { DbExecutor } from './database.ts';

/**
 * Runs `VACUUM (ANALYZE)` on an embedded (PGlite) database every `intervalMs`. PGlite runs Postgres
 * in single-user mode, without the autovacuum daemon a server has: without this, the dead rows every
 * update leaves (outbox rows marked sent, index work claimed and done, orders confirmed) pile up,
 * tuples keep unset hint bits and the planner's statistics go stale, so scans and index searches
 * slow down for as long as the process lives. A server database needs none of this.
 *
 * The vacuum holds PGlite's single connection while it runs (milliseconds for this system's table
 * sizes), so the interval is minutes, not seconds. Returns a function that stops it.
 */
export function startEmbeddedVacuum(db: DbExecutor, options: { intervalMs: number; logger: Logger }): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    const started = performance.now();
    db.execute(sql`vacuum (analyze)`)
      .then(
        () => options.logger.debug({ ms: Math.round(performance.now() - started) }, 'embedded database vacuumed'),
        (error: unknown) => options.logger.warn({ err: error }, 'vacuuming the embedded database failed; trying again at the next interval'),
      )
      .finally(() => {
        running = false;
      });
  }, options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
