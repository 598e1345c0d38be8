/**
 * One dead letter opened: its payload (pretty JSON), whether it still matches its contract, the
 * error and every attempt; redrive or discard from here.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, describeError } from './api-client.ts';
import type { DeadLetterDetail } from './api-types.ts';
import type { DashboardApi } from './dashboard-api.ts';
import { normaliseDeadLetterDetail } from './dashboard-data.ts';
import { count, fullTime, MISSING } from './format.ts';
import { ModalDialog } from './modal-dialog.tsx';

type Loaded = { status: 'loading' } | { status: 'ready'; detail: DeadLetterDetail } | { status: 'error'; message: string };

export interface DeadLetterDialogProps {
  api: DashboardApi;
  id: string;
  busy: boolean;
  onClose: () => void;
  onRedrive: (id: string) => void;
  onDiscard: (id: string) => void;
}

const CONTRACT_WORDS = {
  valid: 'The payload matches its contract.',
  invalid: 'The payload does not match its contract any more:',
  unknown: 'No contract is known for this payload.',
} as const;

function prettyPayload(payload: unknown): string {
  if (payload === undefined) return '(no payload)';
  try {
    return JSON.stringify(payload, null, 2) ?? String(payload);
  } catch {
    return String(payload);
  }
}

function DetailBody({ detail }: { detail: DeadLetterDetail }) {
  const contractStatus = detail.contract.status in CONTRACT_WORDS ? detail.contract.status : 'unknown';
  return (
    <div class="detail-body">
      <dl class="facts detail-facts">
        <div>
          <dt>Kind</dt>
          <dd>{detail.kind}</dd>
        </div>
        <div>
          <dt>{detail.kind === 'event' ? 'Topic' : 'Queue'}</dt>
          <dd>{detail.source}</dd>
        </div>
        <div>
          <dt>{detail.kind === 'event' ? 'Event' : 'Task'}</dt>
          <dd>{detail.name}</dd>
        </div>
        {detail.group && (
          <div>
            <dt>Consumer group</dt>
            <dd>{detail.group}</dd>
          </div>
        )}
        <div>
          <dt>Failed at</dt>
          <dd>{fullTime(detail.failedAt)}</dd>
        </div>
        <div>
          <dt>Attempts</dt>
          <dd>{count(detail.attempts)}</dd>
        </div>
        <div>
          <dt>Correlation id</dt>
          <dd>
            <code>{detail.correlationId ?? MISSING}</code>
          </dd>
        </div>
      </dl>

      <h3>Error</h3>
      <p class="error-line" data-testid="dead-letter-error">
        <code>{detail.errorCode}</code> {detail.errorMessage}
      </p>

      <h3>Contract check</h3>
      <div class={`contract contract-${contractStatus}`} data-testid="contract-check" data-status={contractStatus}>
        <p>{CONTRACT_WORDS[contractStatus]}</p>
        {detail.contract.issues.length > 0 && (
          <ul>
            {detail.contract.issues.map((issue, index) => (
              <li key={index}>{issue}</li>
            ))}
          </ul>
        )}
      </div>

      <h3 id="dead-letter-payload-title">Payload</h3>
      <pre class="payload" tabIndex={0} aria-labelledby="dead-letter-payload-title" data-testid="dead-letter-payload">
        {prettyPayload(detail.payload)}
      </pre>

      <h3>Attempts</h3>
      {detail.attemptsLog.length === 0 ? (
        <p class="muted">No attempts were recorded.</p>
      ) : (
        <div class="table-scroll">
          <table class="attempts" data-testid="dead-letter-attempts">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col" class="text">Time</th>
                <th scope="col" class="text">Worker</th>
                <th scope="col" class="text">Error</th>
              </tr>
            </thead>
            <tbody>
              {detail.attemptsLog.map((attempt, index) => (
                <tr key={`${attempt.attempt}-${index}`}>
                  <td>{attempt.attempt}</td>
                  <td class="text">
                    <time dateTime={attempt.at}>{fullTime(attempt.at)}</time>
                  </td>
                  <td class="text">{attempt.worker ?? MISSING}</td>
                  <td class="text">
                    <code>{attempt.code}</code> {attempt.message}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function DeadLetterDialog({ api, id, busy, onClose, onRedrive, onDiscard }: DeadLetterDialogProps) {
  const [loaded, setLoaded] = useState<Loaded>({ status: 'loading' });

  useEffect(() => {
    const abort = new AbortController();
    setLoaded({ status: 'loading' });
    api.deadLetter(id, abort.signal).then(
      (detail) => setLoaded({ status: 'ready', detail: normaliseDeadLetterDetail(detail) }),
      (error: unknown) => {
        if (abort.signal.aborted) return;
        const message =
          error instanceof ApiError && error.status === 404 ? 'This dead letter is gone: it was redriven or discarded.' : `Could not load it: ${describeError(error)}`;
        setLoaded({ status: 'error', message });
      },
    );
    return () => abort.abort();
  }, [api, id]);

  return (
    <ModalDialog labelledBy="dead-letter-title" class="detail-dialog" testId="dead-letter-detail" onClose={onClose}>
      <header class="dialog-header">
        <h2 id="dead-letter-title">
          Dead letter <code>{id}</code>
        </h2>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </header>
      {loaded.status === 'loading' && <p role="status">Loading…</p>}
      {loaded.status === 'error' && (
        <p class="message message-error" role="alert">
          {loaded.message}
        </p>
      )}
      {loaded.status === 'ready' && <DetailBody detail={loaded.detail} />}
      <footer class="dialog-actions">
        <button type="button" class="primary" disabled={busy || loaded.status !== 'ready'} onClick={() => onRedrive(id)} data-testid="detail-redrive">
          Redrive
        </button>
        <button type="button" class="danger" disabled={busy || loaded.status !== 'ready'} onClick={() => onDiscard(id)} data-testid="detail-discard">
          Discard…
        </button>
      </footer>
    </ModalDialog>
  );
}
