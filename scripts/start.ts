/**
 * `npm start`: runs the whole system on this machine, each service as its own process with prefixed
 * logs, embedded databases under DATA_DIR and Redis from REDIS_BROKER_URL. Ctrl-C stops everything.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import concurrently from 'concurrently';
import { pingRedis } from '@civildiy/common/redis';
import { SERVICES } from '@civildiy/common/topology';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(path.join(root, '.env'))) process.loadEnvFile(path.join(root, '.env'));

const redisUrl = process.env.REDIS_BROKER_URL ?? 'redis://127.0.0.1:6379';
try {
  await pingRedis(redisUrl);
} catch (error) {
  console.error(`
Redis is not reachable at ${redisUrl} (${error instanceof Error ? error.message : String(error)}).
CivilDIY needs Redis 7 for its task queue, event streams and feeds. Start one, for example:
  redis-server --daemonize yes --port 6379            (Debian: apt-get install redis-server)
or point REDIS_BROKER_URL at yours (see .env.example), then run npm start again.`);
  process.exit(1);
}

const only = process.argv.slice(2);
const selected = only.length > 0 ? SERVICES.filter((s) => only.includes(s.name)) : SERVICES;
const dataDir = path.resolve(root, process.env.DATA_DIR ?? '.data');
const env = {
  ...process.env,
  DATA_DIR: dataDir,
  REDIS_BROKER_URL: redisUrl,
  LOG_FORMAT: process.env.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json'),
  FORCE_COLOR: process.stdout.isTTY ? '1' : '0',
};

const { result } = concurrently(
  selected.map((service) => ({
    name: service.name,
    command: 'node --import tsx src/main.ts',
    cwd: path.join(root, service.name),
    env,
  })),
  {
    prefix: 'name',
    prefixColors: ['blue', 'green', 'magenta', 'cyan', 'yellow', 'red', 'gray'],
    killOthersOn: ['failure'],
    killSignal: 'SIGTERM',
  },
);

async function waitReady(port: number, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/health/ready`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return true;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

const deadline = Date.now() + 90_000;
const ready = await Promise.all(selected.map((service) => waitReady(service.ports[0]!, deadline)));
const rows = selected.map((service, i) => {
  const urls = service.ports.map((port) => `http://127.0.0.1:${port}${service.docs ? '/docs' : '/metrics'}`).join('  ');
  return `  ${ready[i] ? 'ready  ' : 'NOT UP '} ${service.name.padEnd(22)} ${urls}`;
});
const gateway = selected.find((service) => service.name === 'gateway');
const entry = gateway ? `The API: http://127.0.0.1:${gateway.ports[0]} (every service behind the gateway; one /docs for all).\n` : '';
console.log(`\nCivilDIY is ${ready.every(Boolean) ? 'running' : 'partly running'} (data in ${dataDir}, Redis ${redisUrl}):\n${rows.join('\n')}\n` +
  entry +
  `Try it: see README.md "Walk-through". Check it: npm run validate. Stop: Ctrl-C.\n`);

try {
  await result;
} catch {
  // One process failed or Ctrl-C stopped them all; concurrently has already printed why.
  process.exitCode = 1;
}
