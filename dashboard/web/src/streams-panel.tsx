/** Event streams: per topic and consumer group, lag, pending, delivery rate; dead letters per topic. */
import type { StreamStatus } from './api-types.ts';
import { count, rate } from './format.ts';
import { Placeholder } from './panel.tsx';

function TopicRows({ stream }: { stream: StreamStatus }) {
  const rows = Math.max(stream.groups.length, 1);
  const topicCells = (
    <th scope="rowgroup" rowSpan={rows} class="text">
      {stream.topic}
      {stream.transport && <span class="muted"> ({stream.transport})</span>}
    </th>
  );
  const deadLetterCell = (
    <td rowSpan={rows} class={stream.deadLetters > 0 ? 'warn' : undefined}>
      {count(stream.deadLetters)}
    </td>
  );
  if (stream.groups.length === 0) {
    return (
      <tbody data-testid={`stream-${stream.topic}`}>
        <tr>
          {topicCells}
          <td colSpan={5} class="text muted">
            no consumer groups
          </td>
          {deadLetterCell}
        </tr>
      </tbody>
    );
  }
  return (
    <tbody data-testid={`stream-${stream.topic}`}>
      {stream.groups.map((group, index) => (
        <tr key={group.group}>
          {index === 0 && topicCells}
          <td class="text">{group.group}</td>
          <td>{count(group.consumers)}</td>
          <td class={(group.lag ?? 0) > 0 ? 'warn' : undefined}>{count(group.lag)}</td>
          <td>{count(group.pending)}</td>
          <td>{rate(group.deliveredPerMinute)}</td>
          {index === 0 && deadLetterCell}
        </tr>
      ))}
    </tbody>
  );
}

export function StreamsPanelBody({ streams }: { streams: StreamStatus[] | null }) {
  if (streams === null) return <Placeholder>Waiting for the event streams…</Placeholder>;
  if (streams.length === 0) return <Placeholder>No event streams.</Placeholder>;
  return (
    <div class="table-scroll">
      <table class="numbers streams">
        <caption class="visually-hidden">Event streams by topic and consumer group</caption>
        <thead>
          <tr>
            <th scope="col" class="text">Topic</th>
            <th scope="col" class="text">Group</th>
            <th scope="col">Consumers</th>
            <th scope="col" title="events not yet delivered to the group">Lag</th>
            <th scope="col" title="delivered, not yet acknowledged">Pending</th>
            <th scope="col">Delivered/min</th>
            <th scope="col">Dead letters</th>
          </tr>
        </thead>
        {streams.map((stream) => (
          <TopicRows key={stream.topic} stream={stream} />
        ))}
      </table>
    </div>
  );
}
