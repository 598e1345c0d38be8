/**
 * The variables only the launchers read (`npm start`, `npm run kafka`), not the services: the local
 * Kafka broker's ports. `.env.example` documents them from this schema.
 */
import { z } from 'zod';
import { envInt } from '@civildiy/common';

export const launcherEnv = z.object({
  KAFKA_PORT: envInt(1, 65535)
    .default(9092)
    .describe('the client port of the local Kafka broker (on 127.0.0.1) that npm start runs for EVENT_BUS=kafka when KAFKA_BROKERS is unset, and npm run kafka runs'),
  KAFKA_CONTROLLER_PORT: envInt(1, 65535).default(9093).describe("the local Kafka broker's controller (KRaft) port, on 127.0.0.1"),
});
