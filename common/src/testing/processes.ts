import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import path from 'node:path';
import { SERVICE_ENV, SERVICE_NODE_ARGS } from '../config/launcher-contract.ts';

/** A free TCP port on 127.0.0.1: from this vitest worker's own block (see below), else asked from the OS. */
export async function freePort(): Promise<number> {
  const block = workerPortBlock();
  if (block) {
    for (let tried = 0; tried < PORT_BLOCK_SIZE; tried++) {
      const port = block.start + (nextInBlock++ % PORT_BLOCK_SIZE);
      if (await canListen(port)) return port;
    }
  }
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * Test files run in parallel vitest workers, and a port the system hands out for port 0 can reach
 * two of them (or a client socket) before either listens on it: a service of one system then
 * answers for another's. Under vitest each worker takes ports from a block of its own, below the
 * ephemeral range (32768 and up) that port 0 and client sockets use.
 */
const PORT_BLOCK_SIZE = 1_000;
const PORT_BLOCKS_START = 20_000;
let nextInBlock = 0;

function workerPortBlock(): { start: number } | undefined {
  const pool = Number(process.env.VITEST_POOL_ID);
  if (!Number.isInteger(pool) || pool < 1) return undefined;
  const start = PORT_BLOCKS_START + (pool - 1) * PORT_BLOCK_SIZE;
  return start + PORT_BLOCK_SIZE <= 32_768 ? { start } : undefined;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A service running as a real child process (tests). */
export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** Everything it wrote (stdout and stderr), for failure messages. */
  output(): string;
  /** Resolves with the exit code (or signal) when it ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options of {@link startServiceProcess}. */
export interface StartServiceOptions {
  /** The repository root (the folder holding the workspaces). */
  root: string;
  /** Workspace folder, e.g. `order-service`. */
  workspace: string;
  /** Environment on top of the parent's. */
  env: Record<string, string>;
  /** Resolve once `GET <readyUrl>` answers 2xx. Without it, resolve at once. */
  readyUrl?: string;
  /** Give up waiting after this long. Default 60 s. */
  readyTimeoutMs?: number;
  /** Display name (default: the workspace). */
  name?: string;
  /**
   * Run the compiled `dist/main.js` with plain node, as `npm start` and the images do (build it
   * first: `npm run build`). Default false: the TypeScript sources through tsx.
   */
  compiled?: boolean;
}

/**
 * Node's arguments to run TypeScript sources of this repository: tsx's loader, and the condition
 * under which `@civildiy/common` and the services' exports resolve to `src/*.ts` instead of `dist/`.
 */
export const TYPESCRIPT_NODE_ARGS: readonly string[] = ['--conditions=civildiy-source', '--import', 'tsx'];

/** How a command run by {@link runTypescriptCommand} ended. */
export interface CommandOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a TypeScript command of this repository (`script`, relative to `cwd`, through tsx with
 * {@link TYPESCRIPT_NODE_ARGS}) to its end and resolves with its exit code and output. `env` is the
 * whole environment the command gets.
 */
export async function runTypescriptCommand(options: { cwd: string; script: string; args?: readonly string[]; env: Record<string, string | undefined> }): Promise<CommandOutcome> {
  const child = spawn(process.execPath, [...TYPESCRIPT_NODE_ARGS, options.script, ...(options.args ?? [])], {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/**
 * Starts a workspace's service as its own process (`src/main.ts` through tsx, or with `compiled`
 * its `dist/main.js`) and waits until it is ready. Rejects, with the process's output, when it exits or is not ready in time.
 */
export async function startServiceProcess(options: StartServiceOptions): Promise<ServiceProcess> {
  const name = options.name ?? options.workspace;
  const args = options.compiled ? [...SERVICE_NODE_ARGS, 'dist/main.js'] : [...TYPESCRIPT_NODE_ARGS, 'src/main.ts'];
  const child = spawn(process.execPath, args, {
    cwd: path.join(options.root, options.workspace),
    env: { ...(options.compiled ? SERVICE_ENV : {}), ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const service: ServiceProcess = {
    name,
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  if (!options.readyUrl) return service;

  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  let ended = false;
  void exited.then(() => {
    ended = true;
  });
  while (Date.now() < deadline && !ended) {
    try {
      const response = await fetch(options.readyUrl, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return service;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await service.stop('SIGKILL');
  throw new Error(`${name} did not become ready at ${options.readyUrl}${ended ? ' (it exited)' : ''}. Output:\n${output.slice(-8_000)}`);
}
