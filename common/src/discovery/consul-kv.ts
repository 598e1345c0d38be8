import { CONSUL_MAX_TXN_OPERATIONS, type ConsulClient, type ConsulKvOperation } from './consul-client.ts';

/** How {@link replaceKvTree} wrote the tree. */
export interface KvTreeReplacement {
  /** `true`: one transaction (readers saw the old tree, then the new one); `false`: in steps (see {@link replaceKvTree}). */
  atomic: boolean;
  /** Keys written. */
  written: number;
  /** Transactions sent. */
  transactions: number;
}

/** Options of {@link replaceKvTree}. */
export interface ReplaceKvTreeOptions {
  /** Operations per transaction at most. Default {@link CONSUL_MAX_TXN_OPERATIONS} (older Consul versions allow 64). */
  maxOperations?: number;
}

/**
 * Replaces everything under `prefix` in Consul's KV store with `entries` (full keys → values), e.g.
 * the gateway's route table in Traefik's KV layout (`traefik/http/routers/<name>/rule`, …).
 *
 * When the tree fits in one transaction (`delete-tree` of the prefix plus one `set` per entry, at
 * most `maxOperations`), it is replaced atomically: a watcher such as Traefik sees the old tree, then
 * the new one. A larger tree is written in steps, so that no key a reader needs is ever missing:
 * first every entry (in transactions of `maxOperations` sets), then the keys under `prefix` that are
 * not in `entries` are deleted; in between, a reader sees the new entries plus the old keys that
 * are going away.
 *
 * `prefix` is a folder: a trailing `/` is added when missing (so `traefik` never touches
 * `traefik-old/`). Every key of `entries` must be under it.
 * @throws Error when a key is outside `prefix` or the prefix is empty; ConsulError when Consul fails
 *   (a failure in the stepped mode can leave new entries written and stale ones not yet deleted:
 *   calling again completes it).
 */
export async function replaceKvTree(client: ConsulClient, prefix: string, entries: Readonly<Record<string, string>>, options: ReplaceKvTreeOptions = {}): Promise<KvTreeReplacement> {
  const folder = `${prefix.replace(/^\/+/, '').replace(/\/+$/, '')}/`;
  if (folder === '/') throw new Error('replaceKvTree needs a prefix: it would replace the whole KV store');
  const keys = Object.keys(entries).sort();
  const outside = keys.filter((key) => !key.startsWith(folder) || key === folder);
  if (outside.length > 0) throw new Error(`keys outside ${folder}: ${outside.slice(0, 5).join(', ')}${outside.length > 5 ? ', …' : ''}`);
  const max = Math.max(2, options.maxOperations ?? CONSUL_MAX_TXN_OPERATIONS);
  const sets: ConsulKvOperation[] = keys.map((key) => ({ verb: 'set', key, value: entries[key]! }));

  if (sets.length + 1 <= max) {
    await client.transaction([{ verb: 'delete-tree', key: folder }, ...sets]);
    return { atomic: true, written: sets.length, transactions: 1 };
  }

  let transactions = 0;
  for (let start = 0; start < sets.length; start += max) {
    await client.transaction(sets.slice(start, start + max));
    transactions++;
  }
  const wanted = new Set(keys);
  const stale: ConsulKvOperation[] = (await client.kvKeys(folder)).filter((key) => !wanted.has(key)).map((key) => ({ verb: 'delete', key }));
  for (let start = 0; start < stale.length; start += max) {
    await client.transaction(stale.slice(start, start + max));
    transactions++;
  }
  return { atomic: false, written: sets.length, transactions };
}
