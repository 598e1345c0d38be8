import type { Redis } from '@civildiy/common/redis';
import { FIRST_GENERATION, FeedKeys } from './feed-keys.ts';
import { LuaScript } from './lua-script.ts';

/** A rebuild in progress, as its marker records it. */
export interface RebuildMarker {
  /** The generation it fills. */
  generation: number;
  /** Its consumer group (one per generation, so it replays from the start). */
  group: string;
  startedAt: string;
}

const REBUILD_GROUP_PREFIX = 'feed-service-rebuild-g';

/** The consumer group a rebuild of `generation` reads as. */
export const rebuildGroup = (generation: number) => `${REBUILD_GROUP_PREFIX}${generation}`;

// Resumes the rebuild in progress, or starts one into a generation number never used before.
const BEGIN = new LuaScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then
  local current = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  local generation = math.max(current, last) + 1
  redis.call('SET', KEYS[3], generation)
  redis.call('HSET', KEYS[2], 'generation', generation, 'group', ARGV[2] .. generation, 'startedAt', ARGV[3])
  return { 1, redis.call('HGETALL', KEYS[2]) }
end
return { 0, redis.call('HGETALL', KEYS[2]) }`);

// Points the API and the live projection at the rebuilt generation and ends the rebuild, in one step.
const SWAP = new LuaScript(`
if redis.call('HGET', KEYS[2], 'generation') ~= ARGV[1] then return false end
local previous = redis.call('GET', KEYS[1]) or ARGV[2]
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return previous`);

const END = new LuaScript(`
if redis.call('HGET', KEYS[1], 'generation') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`);

function toMarker(fields: Record<string, string>): RebuildMarker | undefined {
  if (!fields.generation) return undefined;
  return { generation: Number(fields.generation), group: fields.group ?? rebuildGroup(Number(fields.generation)), startedAt: fields.startedAt ?? '' };
}

function pairsToRecord(pairs: unknown): Record<string, string> {
  const record: Record<string, string> = {};
  const list = Array.isArray(pairs) ? pairs : [];
  for (let i = 0; i + 1 < list.length; i += 2) record[String(list[i])] = String(list[i + 1]);
  return record;
}

/**
 * The generations of the read model: which one is served, the rebuild filling the next one, the
 * atomic swap between them, and whole-generation reads and deletes.
 */
export class FeedGenerations {
  readonly keys: FeedKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new FeedKeys(prefix);
  }

  /** The generation the API and the live projection use. */
  async current(): Promise<number> {
    const value = await this.redis.get(this.keys.generation);
    return value === null ? FIRST_GENERATION : Number(value);
  }

  /** The rebuild in progress, if any. */
  async rebuild(): Promise<RebuildMarker | undefined> {
    return toMarker(await this.redis.hgetall(this.keys.rebuild));
  }

  /**
   * Marks a rebuild into a new generation (from then on the live projection writes it too), or
   * returns the one already in progress (`resumed: true`).
   */
  async beginRebuild(): Promise<RebuildMarker & { resumed: boolean }> {
    const [created, fields] = (await BEGIN.run(
      this.redis,
      [this.keys.generation, this.keys.rebuild, this.keys.lastAllocated],
      [FIRST_GENERATION, REBUILD_GROUP_PREFIX, new Date().toISOString()],
    )) as [number, unknown];
    const marker = toMarker(pairsToRecord(fields));
    if (!marker) throw new Error('The rebuild marker could not be written');
    return { ...marker, resumed: created === 0 };
  }

  /**
   * Serves `generation` from now on and ends its rebuild, atomically. Resolves with the generation
   * served before, or `undefined` when `generation` is not the one being rebuilt (nothing changed).
   */
  async swap(generation: number): Promise<number | undefined> {
    const previous = await SWAP.run(this.redis, [this.keys.generation, this.keys.rebuild], [generation, FIRST_GENERATION]);
    return previous === null ? undefined : Number(previous);
  }

  /** Ends the rebuild of `generation` without swapping (the live projection stops writing it). */
  async endRebuild(generation: number): Promise<boolean> {
    return Number(await END.run(this.redis, [this.keys.rebuild], [generation])) === 1;
  }

  /** Deletes every key of a generation (in batches, without blocking Redis). Resolves with the number deleted. */
  async drop(generation: number): Promise<number> {
    let deleted = 0;
    for await (const keys of this.scan(generation)) {
      if (keys.length > 0) deleted += await this.redis.unlink(...keys);
    }
    return deleted;
  }

  /** Everything a generation holds, in a stable order: for comparing two generations and for debugging. */
  async dump(generation: number): Promise<GenerationDump> {
    const root = this.keys.of(generation).root;
    const dump: GenerationDump = { global: [], users: {}, items: {}, authors: {} };
    const all: string[] = [];
    for await (const keys of this.scan(generation)) all.push(...keys);
    for (const key of all.sort()) {
      const name = key.slice(root.length);
      if (name === 'activity:global') dump.global = await this.feed(key);
      else if (name.startsWith('activity:user:')) dump.users[name.slice('activity:user:'.length)] = await this.feed(key);
      else if (name.startsWith('item:')) dump.items[name.slice('item:'.length)] = await this.redis.hgetall(key);
      else if (name.startsWith('author:')) dump.authors[name.slice('author:'.length)] = await this.redis.hgetall(key);
    }
    return dump;
  }

  private async feed(key: string): Promise<[string, number][]> {
    const flat = await this.redis.zrevrange(key, 0, -1, 'WITHSCORES');
    const entries: [string, number][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) entries.push([flat[i]!, Number(flat[i + 1])]);
    return entries;
  }

  private async *scan(generation: number): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', this.keys.of(generation).pattern, 'COUNT', 1_000);
      cursor = next;
      yield keys;
    } while (cursor !== '0');
  }
}

/** The whole content of one generation (see `feed-keys.ts` for what each part is). */
export interface GenerationDump {
  /** Post id and score, newest first. */
  global: [string, number][];
  /** Per author: post id and score, newest first. */
  users: Record<string, [string, number][]>;
  /** Per post: its record (`version`, `state`, and `author` and `json` when listed). */
  items: Record<string, Record<string, string>>;
  /** Per author: `version` and `name`. */
  authors: Record<string, Record<string, string>>;
}
