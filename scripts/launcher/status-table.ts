/** The table `npm start` prints once every service is up (or given up on), and again when it stops. */
import type { ServiceState, ServiceStatus } from './supervised-service.ts';

/** A service's status plus where it answers. */
export interface StatusRow extends ServiceStatus {
  /** Its `/docs` (or `/metrics`) URLs. */
  urls: string[];
}

const LABELS: Record<ServiceState, string> = {
  starting: 'NOT UP',
  ready: 'ready',
  restarting: 'RESTARTING',
  'gave up': 'GAVE UP',
  stopped: 'stopped',
  killed: 'KILLED',
};

/** One line per service: state, name, pid, restarts, then its URLs (or why the launcher gave up on it). */
export function renderStatusTable(rows: readonly StatusRow[]): string {
  const nameWidth = Math.max(...rows.map((row) => row.name.length)) + 2;
  return rows
    .map((row) => {
      const pid = row.pid === undefined ? '' : `pid ${row.pid}`;
      const restarts = row.restarts === 0 ? '' : `restarted ${row.restarts}×`;
      const detail = row.state === 'gave up' ? (row.gaveUpReason ?? '') : row.urls.join('  ');
      return `  ${LABELS[row.state].padEnd(11)}${row.name.padEnd(nameWidth)}${pid.padEnd(11)}${restarts.padEnd(14)}${detail}`;
    })
    .join('\n');
}
