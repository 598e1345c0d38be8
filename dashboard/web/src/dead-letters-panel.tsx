/**
 * Dead letters of tasks and events in one list: filter, select, open one, redrive one / the
 * selected / all of a kind, discard with a confirmation. Refused actions (404 gone, 409 already
 * redriven) are shown as messages; the list is read again after every action and whenever the
 * server's counts or the activity change.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, describeError } from './api-client.ts';
import type { BulkRedriveBody, DeadLetterKind, DeadLetterSummary, RedriveOutcome } from './api-types.ts';
import type { DashboardApi, DeadLetterFilter } from './dashboard-api.ts';
import { normaliseDeadLetterList } from './dashboard-data.ts';
import { DeadLetterDialog } from './dead-letter-dialog.tsx';
import { DiscardDialog } from './discard-dialog.tsx';
import { count, fullTime, timeOfDay } from './format.ts';
import { Placeholder } from './panel.tsx';

export interface DeadLettersPanelBodyProps {
  api: DashboardApi;
  /** Changes when the dead letters may have changed (counts in the overview, a new activity). */
  changeKey: string;
  /** Queues and topics, offered in the filter. */
  sources: string[];
}

type Message = { tone: 'ok' | 'error'; text: string };
type ListState = { items: DeadLetterSummary[]; total: number } | null;

function isOutcome(value: unknown): value is RedriveOutcome {
  return typeof value === 'object' && value !== null && Array.isArray((value as RedriveOutcome).redriven);
}

function describeOutcome(outcome: RedriveOutcome): Message {
  const redriven = outcome.redriven.length;
  const notFound = outcome.notFound?.length ?? 0;
  const already = outcome.alreadyRedriven?.length ?? 0;
  const parts = [`${redriven} redriven`];
  if (notFound > 0) parts.push(`${notFound} not found`);
  if (already > 0) parts.push(`${already} already redriven`);
  return { tone: redriven === 0 && notFound + already > 0 ? 'error' : 'ok', text: `${parts.join(', ')}.` };
}

function actionFailure(verb: string, id: string, error: unknown): Message {
  if (error instanceof ApiError) {
    if (error.status === 404) return { tone: 'error', text: `${id} is not a dead letter any more (redriven or discarded already). [${error.code}]` };
    if (error.status === 409) return { tone: 'error', text: `${id} was already redriven. [${error.code}]` };
    return { tone: 'error', text: `Could not ${verb} ${id}: ${error.message} [${error.code}]` };
  }
  return { tone: 'error', text: `Could not ${verb} ${id}: ${describeError(error)}` };
}

const KIND_WORDS: Record<DeadLetterKind, string> = { task: 'tasks', event: 'events' };

export function DeadLettersPanelBody({ api, changeKey, sources }: DeadLettersPanelBodyProps) {
  const [filter, setFilter] = useState<DeadLetterFilter>({});
  const [draft, setDraft] = useState<{ kind: '' | DeadLetterKind; source: string; code: string }>({ kind: '', source: '', code: '' });
  const [list, setList] = useState<ListState>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [message, setMessage] = useState<Message | null>(null);
  const [busy, setBusy] = useState(false);
  const [openId, setOpenId] = useState<string | null>(null);
  const [discardId, setDiscardId] = useState<string | null>(null);
  const loading = useRef<AbortController | null>(null);
  const messageRef = useRef<HTMLDivElement>(null);
  const selectAll = useRef<HTMLInputElement>(null);

  const load = useCallback(async () => {
    loading.current?.abort();
    const abort = new AbortController();
    loading.current = abort;
    try {
      const answer = normaliseDeadLetterList(await api.deadLetters(filter, abort.signal));
      if (abort.signal.aborted) return;
      setList(answer);
      setLoadError(null);
      const ids = new Set(answer.items.map((item) => item.id));
      setSelected((current) => new Set([...current].filter((id) => ids.has(id))));
    } catch (error) {
      if (!abort.signal.aborted) setLoadError(describeError(error));
    }
  }, [api, filter]);

  useEffect(() => {
    void load();
  }, [load, changeKey]);
  useEffect(() => () => loading.current?.abort(), []);

  const items = list?.items ?? [];
  const allSelected = items.length > 0 && items.every((item) => selected.has(item.id));
  useEffect(() => {
    if (selectAll.current) selectAll.current.indeterminate = selected.size > 0 && !allSelected;
  }, [selected, allSelected]);

  /** Runs an action, shows its outcome, reads the list again, and keeps keyboard focus on the page. */
  async function act(run: () => Promise<Message>) {
    setBusy(true);
    try {
      setMessage(await run());
    } finally {
      setBusy(false);
    }
    await load();
    // The row (and its button) may be gone: the outcome takes the focus rather than <body>.
    setTimeout(() => {
      if (document.activeElement === document.body || document.activeElement === null) messageRef.current?.focus();
    }, 0);
  }

  const redriveOne = (id: string) =>
    act(async () => {
      try {
        const answer = await api.redrive(id);
        setOpenId((current) => (current === id ? null : current));
        return isOutcome(answer) ? describeOutcome(answer) : { tone: 'ok', text: `${id} redriven.` };
      } catch (error) {
        return actionFailure('redrive', id, error);
      }
    });

  const redriveMany = (body: BulkRedriveBody, what: string) =>
    act(async () => {
      try {
        const outcome = await api.redriveMany(body);
        setSelected(new Set());
        return isOutcome(outcome) ? describeOutcome(outcome) : { tone: 'ok', text: `${what}: redriven.` };
      } catch (error) {
        return { tone: 'error', text: `Could not redrive ${what}: ${describeError(error)}${error instanceof ApiError ? ` [${error.code}]` : ''}` };
      }
    });

  const discard = (id: string) =>
    act(async () => {
      try {
        await api.discard(id);
        setDiscardId(null);
        setOpenId((current) => (current === id ? null : current));
        return { tone: 'ok', text: `${id} discarded.` };
      } catch (error) {
        setDiscardId(null);
        return actionFailure('discard', id, error);
      }
    });

  function applyFilter(event: Event) {
    event.preventDefault();
    setFilter({ kind: draft.kind || undefined, source: draft.source.trim() || undefined, code: draft.code.trim() || undefined });
  }

  function clearFilter() {
    setDraft({ kind: '', source: '', code: '' });
    setFilter({});
  }

  function toggle(id: string, on: boolean) {
    setSelected((current) => {
      const next = new Set(current);
      if (on) next.add(id);
      else next.delete(id);
      return next;
    });
  }

  const filtered = Boolean(filter.kind || filter.source || filter.code);
  const kinds: DeadLetterKind[] = filter.kind ? [filter.kind] : ['task', 'event'];

  return (
    <div class="dead-letters">
      <form class="filters" role="search" aria-label="Filter dead letters" onSubmit={applyFilter}>
        <label>
          Kind
          <select value={draft.kind} onChange={(event) => setDraft({ ...draft, kind: event.currentTarget.value as '' | DeadLetterKind })} data-testid="filter-kind">
            <option value="">tasks and events</option>
            <option value="task">tasks</option>
            <option value="event">events</option>
          </select>
        </label>
        <label>
          Queue or topic
          <input type="text" list="dead-letter-sources" value={draft.source} onInput={(event) => setDraft({ ...draft, source: event.currentTarget.value })} data-testid="filter-source" />
        </label>
        <datalist id="dead-letter-sources">
          {sources.map((source) => (
            <option key={source} value={source} />
          ))}
        </datalist>
        <label>
          Error code
          <input type="text" value={draft.code} onInput={(event) => setDraft({ ...draft, code: event.currentTarget.value })} data-testid="filter-code" />
        </label>
        <button type="submit">Filter</button>
        {filtered && (
          <button type="button" onClick={clearFilter}>
            Clear filter
          </button>
        )}
        <button type="button" onClick={() => void load()} data-testid="refresh-dead-letters">
          Refresh
        </button>
      </form>

      <div class="bulk-actions" role="group" aria-label="Redrive several">
        <button type="button" class="primary" disabled={busy || selected.size === 0} onClick={() => void redriveMany({ ids: [...selected] }, 'the selected dead letters')} data-testid="redrive-selected">
          Redrive selected ({selected.size})
        </button>
        {kinds.map((kind) => (
          <button
            key={kind}
            type="button"
            disabled={busy}
            onClick={() => void redriveMany(filter.source ? { kind, source: filter.source } : { kind }, `all ${KIND_WORDS[kind]}`)}
            data-testid={`redrive-all-${kind}`}
          >
            Redrive all {KIND_WORDS[kind]}
            {filter.source ? ` of ${filter.source}` : ''}
          </button>
        ))}
      </div>

      <div ref={messageRef} tabIndex={-1} class={`message ${message ? `message-${message.tone}` : 'message-empty'}`} role="status" data-testid="dead-letters-message">
        {message?.text}
      </div>

      {loadError && (
        <Placeholder error onRetry={() => void load()}>
          Could not read the dead letters: {loadError}
        </Placeholder>
      )}
      {list === null && !loadError && <Placeholder>Loading dead letters…</Placeholder>}
      {list !== null && items.length === 0 && <Placeholder>{filtered ? 'No dead letters match the filter.' : 'No dead letters. Nothing is stuck.'}</Placeholder>}
      {items.length > 0 && (
        <>
          {list && list.total > items.length && (
            <p class="muted">
              Showing {count(items.length)} of {count(list.total)}.
            </p>
          )}
          <div class="table-scroll">
            <table class="dead-letter-table">
              <caption class="visually-hidden">Dead letters</caption>
              <thead>
                <tr>
                  <th scope="col" class="select">
                    <input
                      ref={selectAll}
                      type="checkbox"
                      aria-label="Select all shown"
                      checked={allSelected}
                      onChange={(event) => setSelected(event.currentTarget.checked ? new Set(items.map((item) => item.id)) : new Set())}
                      data-testid="select-all-dead-letters"
                    />
                  </th>
                  <th scope="col" class="text">Kind</th>
                  <th scope="col" class="text">Queue / topic</th>
                  <th scope="col" class="text">Task / event</th>
                  <th scope="col" class="text">Error</th>
                  <th scope="col" class="text">Failed</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">
                    <span class="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((item) => (
                  <tr key={item.id} class={selected.has(item.id) ? 'selected' : undefined} data-testid={`dead-letter-${item.id}`} data-kind={item.kind}>
                    <td class="select">
                      <input type="checkbox" aria-label={`Select ${item.id}`} checked={selected.has(item.id)} onChange={(event) => toggle(item.id, event.currentTarget.checked)} data-testid={`select-${item.id}`} />
                    </td>
                    <td class="text">
                      <span class={`kind kind-${item.kind}`}>{item.kind}</span>
                    </td>
                    <td class="text">{item.source}</td>
                    <td class="text">
                      {item.name}
                      {item.group && <span class="muted"> → {item.group}</span>}
                    </td>
                    <td class="text error-cell">
                      <code>{item.errorCode}</code>
                      <span class="error-message" title={item.errorMessage}>
                        {item.errorMessage}
                      </span>
                    </td>
                    <td class="text">
                      <time dateTime={item.failedAt} title={fullTime(item.failedAt)}>
                        {timeOfDay(item.failedAt)}
                      </time>
                    </td>
                    <td>{count(item.attempts)}</td>
                    <td class="row-actions">
                      <button type="button" aria-label={`Open ${item.id}`} onClick={() => setOpenId(item.id)} data-testid={`open-${item.id}`}>
                        Open
                      </button>
                      <button type="button" class="primary" aria-label={`Redrive ${item.id}`} disabled={busy} onClick={() => void redriveOne(item.id)} data-testid={`redrive-${item.id}`}>
                        Redrive
                      </button>
                      <button type="button" class="danger" aria-label={`Discard ${item.id}`} disabled={busy} onClick={() => setDiscardId(item.id)} data-testid={`discard-${item.id}`}>
                        Discard…
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}

      {openId && <DeadLetterDialog api={api} id={openId} busy={busy} onClose={() => setOpenId(null)} onRedrive={(id) => void redriveOne(id)} onDiscard={setDiscardId} />}
      {discardId && <DiscardDialog id={discardId} busy={busy} onConfirm={(id) => void discard(id)} onCancel={() => setDiscardId(null)} />}
    </div>
  );
}
