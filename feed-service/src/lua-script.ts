import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from '@civildiy/common/redis';

/** A Lua script run by its SHA (EVALSHA), sent in full only when Redis does not have it cached. */
export class LuaScript {
  private readonly sha: string;

  constructor(private readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** A script from `src/lua/`. */
  static file(name: string): LuaScript {
    return new LuaScript(readFileSync(new URL(`./lua/${name}`, import.meta.url), 'utf8'));
  }

  async run(redis: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}
