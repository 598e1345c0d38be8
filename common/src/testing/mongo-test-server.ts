import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepLastLines } from '../processes/last-lines.ts';
import { fetchMavenClasspath } from '../processes/maven-classpath.ts';
import { repositoryRoot } from './mock-providers.ts';
import { freePort } from './processes.ts';


/** The Maven project naming the test server's pinned artifacts (mongo-java-server and a logger). */
export const MONGO_SERVER_POM = fileURLToPath(new URL('../../mongo-server/pom.xml', import.meta.url));

/** The server's main class, run as a single source file (`java` compiles it in memory: nothing is built beforehand). */
export const MONGO_SERVER_MAIN = fileURLToPath(new URL('../../mongo-server/LocalMongoServer.java', import.meta.url));

/** Where the server's classpath is copied once and shared by every test file (under the repository's `.data`). */
const sharedLib = path.join(repositoryRoot, '.data', 'test-mongo-server', 'lib');

/** Java or Maven is missing: the message says what to install. */
export class MongoToolingMissingError extends Error {
  override readonly name = 'MongoToolingMissingError';
}

/**
 * Copies the test server's runtime classpath from Maven Central into `lib` (default
 * `.data/test-mongo-server/lib`), once per version of its POM (a hash of it is kept next to the
 * jars), and returns the folder. Test files running at the same time may call it together: each
 * copies into a folder of its own and the first to finish moves it into place.
 * @throws MongoToolingMissingError when Java 17+ or Maven is not installed.
 */
export function fetchMongoTestServer(lib = sharedLib): Promise<string> {
  return fetchMavenClasspath({
    pom: MONGO_SERVER_POM,
    lib,
    what: 'the MongoDB test server',
    missing: (tool) =>
      new MongoToolingMissingError(
        tool === 'java'
          ? 'The MongoDB test server (mongo-java-server) needs Java 17 or newer, and none was found (java -version failed). Install one (Debian: apt-get install openjdk-17-jre-headless), or point the tests at a real MongoDB with MONGODB_TEST_URL.'
          : 'The MongoDB test server (mongo-java-server) is fetched from Maven Central with Maven, which was not found (mvn -v failed). Install it (Debian: apt-get install maven), or point the tests at a real MongoDB with MONGODB_TEST_URL.',
      ),
  });
}

/**
 * Why this machine cannot run the MongoDB test server (Java 17+ or Maven missing, the message says
 * which), or undefined when it can. Fetches the jars the first time, as the first start would.
 */
export async function mongoTestServerToolingMissing(): Promise<string | undefined> {
  try {
    await fetchMongoTestServer();
    return undefined;
  } catch (error) {
    if (error instanceof MongoToolingMissingError) return error.message;
    throw error;
  }
}

/** Options of {@link MongoTestServer.start}. */
export interface MongoTestServerOptions {
  /** The port on 127.0.0.1. Default: a free one. */
  port?: number;
  /** How long to wait for the server to listen, in ms. Default 60,000. */
  readyTimeoutMs?: number;
  /** Gets each line the server writes (it logs warnings and errors only). Default: kept for error messages only. */
  onOutput?: (line: string) => void;
}

/**
 * A MongoDB wire-compatible server for a test file: `de.bwaldvogel:mongo-java-server` with its
 * in-memory backend (Java 17+; its jars fetched from Maven Central with Maven the first time, see
 * {@link fetchMongoTestServer}), listening on 127.0.0.1. It reports MongoDB wire version 8 (4.2),
 * which the Node.js driver 6.x accepts (7.x needs 9).
 *
 * What it is not: a replica set (no multi-document transactions, no change streams), and it has no
 * TTL monitor (a TTL index is kept as defined, nothing expires); partial indexes are stored but not
 * applied. Tests that need those run against a real MongoDB (`MONGODB_TEST_URL`).
 *
 * Start one per test file (`beforeAll`), stop it in `afterAll`; its data lives as long as the
 * process, which also ends when the test process does (it watches its standard input).
 *
 * ```ts
 * const mongo = await MongoTestServer.start();
 * const client = new MongoClient(`${mongo.url}/posts`);
 * afterAll(() => mongo.stop());
 * ```
 */
export class MongoTestServer {
  /** Resolves when the JVM has exited (stopped, killed or crashed). */
  readonly exited: Promise<void>;
  private readonly output: string[];

  private constructor(
    private readonly child: ChildProcess,
    /** The port on 127.0.0.1. */
    readonly port: number,
    onOutput: ((line: string) => void) | undefined,
  ) {
    this.output = keepLastLines(child, onOutput);
    // `once` rejects on 'error' (the JVM could not be spawned): that ends it too.
    this.exited = once(child, 'exit').then(
      () => undefined,
      () => undefined,
    );
  }

  /** `mongodb://127.0.0.1:<port>` (add `/<database>` to choose the default database). */
  get url(): string {
    return `mongodb://127.0.0.1:${this.port}`;
  }

  /**
   * Fetches the jars (the first time) and starts the server; resolves once it listens (about 2–3 s,
   * most of it compiling the main class), or rejects with its output.
   * @throws MongoToolingMissingError when Java or Maven is missing.
   */
  static async start(options: MongoTestServerOptions = {}): Promise<MongoTestServer> {
    const lib = await fetchMongoTestServer();
    const port = options.port ?? (await freePort());
    // C1 only and a serial collector: a short-lived test server starts about a second sooner.
    const jvm = ['-Xmx256m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn'];
    // Standard input stays a pipe from this process: the server exits when it closes, even if this process is killed.
    const child = spawn('java', [...jvm, '-cp', `${lib}${path.sep}*`, MONGO_SERVER_MAIN, String(port), '127.0.0.1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const server = new MongoTestServer(child, port, options.onOutput);
    try {
      await server.waitListening(options.readyTimeoutMs ?? 60_000);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** The process id of the JVM. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Stops the server (SIGTERM), SIGKILL after `graceMs` (default 5 s). Its data is gone. Safe to call twice. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private waitListening(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (failure?: string) => {
        clearTimeout(timer);
        this.child.stdout?.off('data', onData);
        this.child.off('exit', onExit);
        if (failure === undefined) resolve();
        else reject(new Error(`The MongoDB test server did not ${failure}. Its last output:\n${this.output.join('\n')}`));
      };
      // keepLastLines reads the line first (its listener was added before this one).
      const onData = () => {
        if (this.output.some((line) => line.startsWith('listening on '))) settle();
      };
      const onExit = () => settle('stay up');
      const timer = setTimeout(() => settle(`listen within ${timeoutMs} ms`), timeoutMs);
      this.child.stdout?.on('data', onData);
      this.child.once('exit', onExit);
    });
  }
}
