import type { FlowChildJob, FlowJob } from 'bullmq';
import type { RequestContext } from '../context/index.ts';
import type { TaskDefinition, TaskInput, TaskOutput, TaskRef } from './define.ts';
import { jobOptionsFor, type TaskJobData } from './job-data.ts';
import type { TaskClient } from './task-client.ts';

/** The first step of a {@link chain}: a task and its input. */
export interface ChainFirstStep<T extends TaskDefinition = TaskDefinition> {
  task: T;
  input: TaskInput<T>;
}

/** A later step of a {@link chain}: its input is the previous step's output. */
export interface ChainNextStep<T extends TaskDefinition = TaskDefinition> {
  task: T;
}

/** Options of {@link chain}. */
export interface ChainOptions {
  /** The context every step carries. Default: the current one (a new correlation id outside any). */
  context?: RequestContext;
}

type LastTask<S extends readonly { task: TaskDefinition }[]> = S extends readonly [...unknown[], { task: infer L extends TaskDefinition }]
  ? L
  : S[number]['task'];

/**
 * Runs tasks one after the other (a BullMQ flow, added atomically): each later step receives the
 * previous step's output as its input, validated against its own input schema by the worker (a
 * mismatch is a permanent failure). Every step keeps its own queue, retries and timeout; when a step
 * fails for good the steps after it fail too, so the returned reference (to the last step) rejects
 * with `TaskFailedError`.
 *
 * ```ts
 * const ref = await chain(tasks, [{ task: fetchPage, input: { url } }, { task: extractText }, { task: embedText }]);
 * const vector = await ref.result();
 * ```
 * @throws ValidationError when the first step's input is invalid (nothing is added).
 */
export async function chain<const S extends readonly [ChainFirstStep, ...ChainNextStep[]]>(
  client: TaskClient,
  steps: S & readonly [ChainFirstStep<S[0]['task']>, ...ChainNextStep[]],
  options: ChainOptions = {},
): Promise<TaskRef<TaskOutput<LastTask<S>>>> {
  const [first, ...rest] = steps;
  const firstData = client.jobData(first.task, first.input, options.context);
  const context = firstData.context;
  let node: FlowChildJob = {
    name: first.task.name,
    queueName: first.task.queue,
    data: firstData,
    opts: { ...jobOptionsFor(first.task), failParentOnFailure: true },
  };
  for (let index = 0; index < rest.length; index++) {
    const step = rest[index]!;
    const data: TaskJobData = { fromPrevious: true, context };
    const last = index === rest.length - 1;
    node = {
      name: step.task.name,
      queueName: step.task.queue,
      data,
      opts: last ? { ...jobOptionsFor(step.task) } : { ...jobOptionsFor(step.task), failParentOnFailure: true },
      children: [node],
    };
  }
  const root: FlowJob = rest.length === 0 ? { ...node, opts: { ...jobOptionsFor(first.task) } } : (node as FlowJob);
  const tree = await client.flowProducer().add(root);
  const lastTask = (rest.at(-1) ?? first).task as LastTask<S>;
  return client.ref(lastTask, tree.job.id as string);
}
