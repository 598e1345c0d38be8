import { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** order-service environment (see .env.example). */
export const orderServiceEnv = baseEnv.extend({
  ORDER_PORT: envInt(0, 65535).default(8105).describe('the HTTP port of order-service'),
  ORDER_DATABASE_URL: z.string().optional().describe('a postgres:// URL; unset = embedded PGlite in DATA_DIR/order-service'),
});
export type OrderServiceConfig = z.infer<typeof orderServiceEnv>;
