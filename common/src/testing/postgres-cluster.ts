import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './processes.ts';

const run = promisify(execFile);

/** A PostgreSQL server of a test's own, which it may stop and restart without disturbing other tests. */
export interface PostgresCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  /** Creates an empty database on it; resolves with its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (`fast`: open transactions are rolled back, connections dropped). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Restarts it, as `pg_ctlcluster … restart` does. */
  restart(): Promise<void>;
  /** Stops it and deletes its data. Safe to call twice. */
  remove(): Promise<void>;
}

/** The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`, Debian's layout). */
async function serverBin(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await readdir(root).catch(() => [] as string[])).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`No PostgreSQL server under ${root} (apt-get install postgresql)`);
  return path.join(root, versions[0]!, 'bin');
}

/**
 * Creates and starts a throw-away PostgreSQL cluster on a free port (trust authentication, user
 * `postgres`), for tests that restart the database under a running service. PostgreSQL refuses to
 * run as root, so as root the server runs as the `postgres` user (`runuser`).
 */
export async function startPostgresCluster(): Promise<PostgresCluster> {
  const bin = await serverBin();
  const root = await mkdtemp(path.join(tmpdir(), 'civildiy-pg-'));
  const dataDir = path.join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await run('chown', ['postgres', root]);
  const pgCommand = (program: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, program), ...args]) : run(path.join(bin, program), args);
  await pgCommand('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${root} -c fsync=off`;
  const ctl = (action: string, ...extra: string[]) => pgCommand('pg_ctl', ['-D', dataDir, '-l', path.join(root, 'server.log'), '-w', '-o', options, ...extra, action]);
  await ctl('start');
  let removed: Promise<void> | undefined;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    createDatabase: async (name) => {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new TypeError(`Database name "${name}" must be lower-case letters, digits and _`);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`create database ${name}`);
      } finally {
        await client.end();
      }
      return url.replace(/\/postgres$/, `/${name}`);
    },
    stop: async () => {
      await ctl('stop', '-m', 'fast');
    },
    start: async () => {
      await ctl('start');
    },
    restart: async () => {
      await ctl('restart', '-m', 'fast');
    },
    remove: () =>
      (removed ??= (async () => {
        await ctl('stop', '-m', 'immediate').catch(() => undefined);
        await rm(root, { recursive: true, force: true });
      })()),
  };
}
