import { createLogger, loadConfigOrExit } from '@civildiy/common';
import { TaskClient, TaskTimeoutError } from '@civildiy/common/tasks';
import { searchServiceEnv } from './config.ts';
import { reindexControl, type ReindexAnswer } from './reindex-control.ts';

// `npm run search:reindex -w search-service [-- --abort]`: re-embeds every indexed post into a new
// generation, with the running search-service's EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSIONS, while
// search keeps serving the current one, then switches (see search-reindex.ts). A search-service
// started with another model or dimension than its index holds starts one by itself: this follows it.
// The running search-service does the work (it holds the database); this asks it through the task
// queue and shows the progress. Ctrl-C stops following, not the reindex: run it again to follow
// it, or with --abort to drop the unfinished generation.

const config = loadConfigOrExit(searchServiceEnv);
const logger = createLogger({ service: 'search-reindex', level: config.LOG_LEVEL });
const tasks = new TaskClient({ connection: config.REDIS_BROKER_URL, prefix: config.REDIS_KEY_PREFIX, logger });
const ANSWER_TIMEOUT_MS = 30_000;

async function ask(action: 'start' | 'status' | 'abort'): Promise<ReindexAnswer> {
  const ref = await tasks.enqueue(reindexControl, { action });
  try {
    return await ref.result({ timeoutMs: ANSWER_TIMEOUT_MS });
  } catch (error) {
    if (error instanceof TaskTimeoutError) {
      throw new Error(`No search-service answered within ${ANSWER_TIMEOUT_MS / 1000} s: is it running (npm start, or npm start -w search-service)?`, { cause: error });
    }
    throw error;
  }
}

async function follow(generation: number, doneAtStart: number): Promise<number> {
  let previous = { done: doneAtStart, at: Date.now() };
  for (;;) {
    const state = await ask('status');
    if (state.building?.generation !== generation) {
      if (state.activeGeneration === generation) {
        logger.info({ generation, model: state.model, dimensions: state.dimensions }, `done: search now serves generation ${generation}, ${state.model} (${state.dimensions} dimensions)`);
        return 0;
      }
      logger.error({ state }, `the reindex into generation ${generation} was aborted`);
      return 1;
    }
    const { total, counts } = state.building;
    const now = Date.now();
    const rate = ((counts.done - previous.done) * 1000) / Math.max(1, now - previous.at);
    previous = { done: counts.done, at: now };
    const percent = total === 0 ? 100 : Math.floor((counts.done * 100) / total);
    logger.info(
      { generation, total, ...counts, rowsPerSecond: Math.round(rate * 10) / 10 },
      `generation ${generation}: ${counts.done}/${total} rows (${percent}%), ${rate.toFixed(1)} rows/s, ${counts.failed} failed`,
    );
    if (counts.failed > 0 && counts.pending + counts.claimed === 0) {
      logger.error(
        { failed: counts.failed },
        `${counts.failed} rows failed (see GET /search/index/status); once the provider works, POST /search/index/failed/redrive and run this again to follow the reindex`,
      );
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, config.SEARCH_REINDEX_PROGRESS_MS));
  }
}

let code = 0;
try {
  if (process.argv.includes('--abort')) {
    const { aborted } = await ask('abort');
    logger.info({ aborted }, aborted == null ? 'no reindex was under way' : `reindex into generation ${aborted} dropped`);
  } else {
    const { started, activeGeneration, building } = await ask('start');
    if (!started) throw new Error('search-service did not start the reindex');
    const into = `generation ${started.generation}, ${building?.model} (${building?.dimensions} dimensions)`;
    logger.info(
      started,
      started.resumed
        ? `following the reindex into ${into} already under way (search serves ${activeGeneration})`
        : `reindexing ${started.copied} posts into ${into} (search serves ${activeGeneration} meanwhile)`,
    );
    code = await follow(started.generation, building?.counts.done ?? 0);
  }
} catch (error) {
  logger.error({ err: error }, error instanceof Error ? error.message : 'reindex failed');
  code = 1;
}
await tasks.close();
process.exit(code);
