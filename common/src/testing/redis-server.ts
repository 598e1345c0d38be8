import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './processes.ts';

/**
 * A `redis-server` of a test's own, on a free port, with its append-only file in a temporary folder
 * (`appendfsync always`: a restart loses nothing it acknowledged): for tests that crash, freeze or
 * restart Redis under a running system without disturbing the shared test Redis.
 */
export class PrivateRedisServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  /** Starts one and resolves once it accepts connections. */
  static async start(): Promise<PrivateRedisServer> {
    const redis = new PrivateRedisServer(await freePort(), await mkdtemp(path.join(tmpdir(), 'civildiy-redis-')));
    await redis.up();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server (again: it reloads its append-only file) and resolves once it accepts connections. */
  async up(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before accepting connections:\n${output}`)));
    });
  }

  /** Kills the server as a crash would (SIGKILL) and resolves once it is gone. */
  async crash(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  /** Freezes the server (SIGSTOP): it keeps its connections and answers nothing. */
  stall(): void {
    this.child?.kill('SIGSTOP');
  }

  /** Lets a stalled server go on (SIGCONT). */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Kills the server and deletes its data folder. */
  async remove(): Promise<void> {
    await this.crash();
    await rm(this.dir, { recursive: true, force: true });
  }
}
