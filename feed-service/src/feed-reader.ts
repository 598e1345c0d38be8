import { ServiceUnavailableError } from '@civildiy/common';
import type { Redis } from '@civildiy/common/redis';
import { decodeCursor, encodeCursor } from './feed-cursor.ts';
import type { FeedItem } from './feed-item.ts';
import { FeedKeys } from './feed-keys.ts';
import { LuaScript } from './lua-script.ts';

/** One page of a feed. */
export interface FeedPage {
  items: FeedItem[];
  /** Pass it back as `cursor` for the next page; `null` on the last page. */
  nextCursor: string | null;
}

/** What {@link FeedReader.page} takes. */
export interface PageRequest {
  /** An author's feed; omitted for the global feed. */
  userId?: string;
  /** From {@link FeedPage.nextCursor}; omitted for the newest posts. */
  cursor?: string;
  /** Items per page. */
  limit: number;
}

const script = LuaScript.file('page.lua');

/**
 * Serves feed pages from the read model: one script call per page, which also joins the display
 * names and assembles the items' JSON, so a page costs one round trip and no re-serialisation.
 */
export class FeedReader {
  private readonly keys: FeedKeys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = new FeedKeys(prefix);
  }

  /**
   * The page after `cursor`, newest first (ties by post id), as the JSON text of a {@link FeedPage}.
   * @throws ValidationError `feed.invalid_cursor`; ServiceUnavailableError `feed.unavailable` when Redis fails.
   */
  async pageJson(request: PageRequest): Promise<string> {
    const cursor = request.cursor === undefined ? undefined : decodeCursor(request.cursor);
    let reply: (string | number | null)[];
    try {
      reply = (await script.run(
        this.redis,
        [this.keys.generation],
        [this.keys.base, request.userId ?? '', cursor?.score ?? '', cursor?.postId ?? '', request.limit],
      )) as typeof reply;
    } catch (error) {
      throw new ServiceUnavailableError('The feed store is unavailable', 'feed.unavailable', { cause: error });
    }
    const [more, lastId, lastScore] = reply;
    // Each stored item is a JSON object: the display name goes in before its closing brace.
    const items: string[] = [];
    for (let i = 3; i + 1 < reply.length; i += 2) {
      const json = String(reply[i]);
      const name = reply[i + 1];
      items.push(`${json.slice(0, -1)},"authorDisplayName":${typeof name === 'string' ? JSON.stringify(name) : 'null'}}`);
    }
    const next = more === 1 && typeof lastId === 'string' ? `"${encodeCursor({ score: Number(lastScore), postId: lastId })}"` : 'null';
    return `{"items":[${items.join(',')}],"nextCursor":${next}}`;
  }

  /** {@link pageJson}, parsed. */
  async page(request: PageRequest): Promise<FeedPage> {
    return JSON.parse(await this.pageJson(request)) as FeedPage;
  }
}
