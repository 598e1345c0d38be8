/** A table per task queue (counts, rates, the oldest waiting job, workers) and its tasks' run times. */
import type { QueueStatus } from './api-types.ts';
import { count, duration, milliseconds, rate } from './format.ts';
import { Placeholder } from './panel.tsx';

function QueueCard({ queue }: { queue: QueueStatus }) {
  const titleId = `queue-${queue.queue}-title`;
  return (
    <article class="card" data-testid={`queue-${queue.queue}`} aria-labelledby={titleId}>
      <h3 id={titleId}>{queue.queue}</h3>
      <div class="card-tables">
        <div class="table-scroll">
          <table class="numbers">
            <caption class="visually-hidden">Jobs of queue {queue.queue}</caption>
            <thead>
              <tr>
                <th scope="col">Waiting</th>
                <th scope="col">Active</th>
                <th scope="col">Delayed</th>
                <th scope="col" title="dead letters">Failed</th>
                <th scope="col">Completed/min</th>
                <th scope="col" title="attempts that failed, retried or dead-lettered">Failed/min</th>
                <th scope="col">Oldest waiting</th>
                <th scope="col">Workers</th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <td>{count(queue.counts.waiting)}</td>
                <td>{count(queue.counts.active)}</td>
                <td>{count(queue.counts.delayed)}</td>
                <td class={queue.counts.failed > 0 ? 'warn' : undefined}>{count(queue.counts.failed)}</td>
                <td>{rate(queue.completedPerMinute)}</td>
                <td class={(queue.failedPerMinute ?? 0) > 0 ? 'warn' : undefined}>{rate(queue.failedPerMinute)}</td>
                <td>{duration(queue.oldestWaitingAgeSeconds)}</td>
                <td class={queue.workers === 0 ? 'warn' : undefined}>{count(queue.workers)}</td>
              </tr>
            </tbody>
          </table>
        </div>
        <div class="tasks-block">
          {queue.tasks.length > 0 ? (
            <table class="numbers tasks">
              <caption class="visually-hidden">Run times of the tasks of queue {queue.queue}, last 15 minutes</caption>
              <thead>
                <tr>
                  <th scope="col" class="text">Task</th>
                  <th scope="col" title="attempts in the last 15 minutes">Runs</th>
                  <th scope="col">p50</th>
                  <th scope="col">p99</th>
                </tr>
              </thead>
              <tbody>
                {queue.tasks.map((task) => (
                  <tr key={task.task}>
                    <th scope="row" class="text">
                      {task.task}
                    </th>
                    <td>{count(task.runs)}</td>
                    <td>{milliseconds(task.p50Ms)}</td>
                    <td>{milliseconds(task.p99Ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <p class="muted">No task runs in the last 15 minutes.</p>
          )}
        </div>
      </div>
    </article>
  );
}

export function QueuesPanelBody({ queues }: { queues: QueueStatus[] | null }) {
  if (queues === null) return <Placeholder>Waiting for the queues…</Placeholder>;
  if (queues.length === 0) return <Placeholder>No task queues.</Placeholder>;
  return (
    <div class="cards">
      {queues.map((queue) => (
        <QueueCard key={queue.queue} queue={queue} />
      ))}
    </div>
  );
}
