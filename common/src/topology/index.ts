/** A process of the system as the launcher, the validation script and the dashboard see it. */
export interface ServiceInfo {
  /** The workspace folder (and process name). */
  name: string;
  /** The environment variable holding its port. */
  portVariable: string;
  /** Default port(s); the first one answers `/health/ready`. */
  ports: number[];
  /** What it does, one line. */
  role: string;
  /** Whether it serves `/docs`. */
  docs: boolean;
  /** The Postgres database it owns, if any. */
  database?: ServiceDatabase;
}

/** A service's own database. */
export interface ServiceDatabase {
  /** Its name on a server (`orders`); the embedded PGlite folder is `DATA_DIR/<service name>`. */
  name: string;
  /** The variable holding its connection string (`ORDER_DATABASE_URL`); unset: embedded. */
  urlVariable: string;
  /** Needs pgvector (`CREATE EXTENSION vector`). */
  vector?: boolean;
}

/** Every process `npm start` runs, in start order (providers first, then the services that call them). */
export const SERVICES: readonly ServiceInfo[] = [
  { name: 'mock-providers', portVariable: 'MOCK_PAYMENTS_PORT', ports: [8003, 8002, 8001], role: 'payments (8003), messaging (8002) and embeddings (8001) stand-ins', docs: true },
  { name: 'auth-service', portVariable: 'AUTH_PORT', ports: [8101], role: 'users, tokens, JWKS', docs: true, database: { name: 'auth', urlVariable: 'AUTH_DATABASE_URL' } },
  { name: 'profile-service', portVariable: 'PROFILE_PORT', ports: [8102], role: 'user profiles', docs: true, database: { name: 'profile', urlVariable: 'PROFILE_DATABASE_URL' } },
  { name: 'posts-service', portVariable: 'POSTS_PORT', ports: [8103], role: 'posts (write model, outbox to posts-events)', docs: true, database: { name: 'posts', urlVariable: 'POSTS_DATABASE_URL' } },
  { name: 'feed-service', portVariable: 'FEED_PORT', ports: [8104], role: 'activity feeds (read model in Redis)', docs: true },
  { name: 'search-service', portVariable: 'SEARCH_PORT', ports: [8107], role: 'semantic search over posts (pgvector)', docs: true, database: { name: 'search', urlVariable: 'SEARCH_DATABASE_URL', vector: true } },
  { name: 'order-service', portVariable: 'ORDER_PORT', ports: [8105], role: 'catalog and orders', docs: true, database: { name: 'orders', urlVariable: 'ORDER_DATABASE_URL' } },
  { name: 'notification-service', portVariable: 'NOTIFICATION_PORT', ports: [8106], role: 'notifications', docs: true, database: { name: 'notifications', urlVariable: 'NOTIFICATION_DATABASE_URL' } },
  { name: 'worker', portVariable: 'WORKER_PORT', ports: [8108], role: 'dedicated task worker (health, metrics)', docs: false },
  { name: 'gateway', portVariable: 'GATEWAY_PORT', ports: [8000], role: 'single entry point: routing, JWT, rate limits, /docs', docs: true },
  { name: 'dashboard', portVariable: 'DASHBOARD_PORT', ports: [3000], role: "operators' dashboard: health, queues, streams, dead letters, charts", docs: true },
];
export * from './routes.ts';
export * from './traefik-config.ts';
export * from './caddy-config.ts';
