/**
 * The ops CLI (`npm run ops -- …` at the repository root): the dashboard's dead-letter and queue
 * operations for scripts and terminals, straight against Redis and the event bus (configured from the
 * environment and `.env`, like the services). Actions are recorded in the dashboard's activity list
 * as the OS user, `via: 'cli'`. Exit codes: 0 done, 1 refused (unknown id, already redriven), 2 usage,
 * 78 a bad variable.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, createLogger, loadConfig } from '@civildiy/common';
import { dashboardEnv } from '../config.ts';
import { discardDeadLetter, EXIT, listDeadLetters, redriveDeadLetters, refusal, showDeadLetter, showQueues, UsageError, type CommandInput } from './ops-commands.ts';
import { openOpsContext } from './ops-context.ts';

const USAGE = `Usage: npm run ops -- <command>

  dead-letters list [--kind task|event] [--source <queue|topic>] [--code <error code>] [--limit <n>] [--json]
  dead-letters show <id> [--json]
  dead-letters redrive <id>… [--json]
  dead-letters redrive --all --kind task|event [--source <queue|topic>] [--json]
  dead-letters discard <id> --yes
  queues [--json]

A dead letter's id is task:<queue>:<job id> or event:<topic>:<dead letter id> (as listed).
Configuration comes from the environment and .env (REDIS_BROKER_URL, REDIS_KEY_PREFIX, EVENT_BUS, …).`;

const COMMANDS = {
  'dead-letters list': listDeadLetters,
  'dead-letters show': showDeadLetter,
  'dead-letters redrive': redriveDeadLetters,
  'dead-letters discard': discardDeadLetter,
  queues: showQueues,
} as const;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        kind: { type: 'string' },
        source: { type: 'string' },
        code: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean', default: false },
        all: { type: 'boolean', default: false },
        yes: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    (values.help ? console.log : console.error)(USAGE);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  const named = positionals[0] === 'dead-letters' ? `dead-letters ${positionals[1] ?? ''}` : positionals[0]!;
  const command = COMMANDS[named as keyof typeof COMMANDS];
  if (!command) {
    console.error(`Unknown command: ${named.trim()}\n\n${USAGE}`);
    return EXIT.usage;
  }
  const input: CommandInput = {
    args: positionals.slice(named.split(' ').length),
    kind: values.kind,
    source: values.source,
    code: values.code,
    limit: values.limit,
    json: values.json,
    all: values.all,
    yes: values.yes,
  };

  const root = fileURLToPath(new URL('../../../', import.meta.url));
  if (existsSync(`${root}.env`)) process.loadEnvFile(`${root}.env`);
  let config;
  try {
    config = loadConfig(dashboardEnv);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 78;
    }
    throw error;
  }
  // Its own log lines (an action, a connection problem) go to stderr: stdout is the answer (--json).
  const logger = createLogger({ service: 'ops-cli', level: process.env.LOG_LEVEL ?? 'warn', destination: process.stderr });
  let ops;
  try {
    ops = await openOpsContext(config, logger);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    return EXIT.failed;
  }
  try {
    return await command(ops, input, (text) => console.log(text));
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
      return EXIT.usage;
    }
    const refused = refusal(error);
    if (refused === undefined) throw error;
    console.error(refused);
    return EXIT.failed;
  } finally {
    await ops.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
