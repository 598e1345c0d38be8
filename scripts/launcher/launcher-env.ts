/**
 * The variables only the launchers read (`npm start`, `npm run kafka`), not the services: where the
 * services' databases run, and the local Kafka broker's ports. `.env.example` documents them from
 * this schema.
 */
import { z } from 'zod';
import { envInt } from '@civildiy/common';

export const launcherEnv = z.object({
  LOCAL_DATABASE: z
    .enum(['postgres', 'pglite'])
    .default('postgres')
    .describe(
      "where npm start runs the databases of services whose *_DATABASE_URL is unset: postgres = one local Postgres server (data in DATA_DIR/postgres, a database and role per service; search-service stays on PGlite, which has pgvector), pglite = embedded PGlite inside each service (DATA_DIR/<service>)",
    ),
  LOCAL_POSTGRES_PORT: envInt(1, 65535).default(5433).describe('the port (on 127.0.0.1) of the local Postgres server that npm start runs for LOCAL_DATABASE=postgres'),
  KAFKA_PORT: envInt(1, 65535)
    .default(9092)
    .describe('the client port of the local Kafka broker (on 127.0.0.1) that npm start runs for EVENT_BUS=kafka when KAFKA_BROKERS is unset, and npm run kafka runs'),
  KAFKA_CONTROLLER_PORT: envInt(1, 65535).default(9093).describe("the local Kafka broker's controller (KRaft) port, on 127.0.0.1"),
});
