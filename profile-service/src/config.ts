import { z } from 'zod';
import { baseEnv, envInt } from '@civildiy/common';

/** profile-service environment (see .env.example). */
export const profileServiceEnv = baseEnv.extend({
  PROFILE_PORT: envInt(0, 65535).default(8102).describe('the HTTP port of profile-service'),
  PROFILE_DATABASE_URL: z.string().optional().describe('a postgres:// URL; unset = embedded PGlite in DATA_DIR/profile-service'),
});
export type ProfileServiceConfig = z.infer<typeof profileServiceEnv>;
