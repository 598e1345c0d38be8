import { asc, eq, inArray } from 'drizzle-orm';
import type { Database } from '@civildiy/common/db';
import { catalogItems } from './db/schema.ts';
import type * as schema from './db/schema.ts';

export type CatalogItem = typeof catalogItems.$inferSelect;

/** The kits on sale, by SKU. */
export async function listCatalog(db: Database<typeof schema>): Promise<CatalogItem[]> {
  return db.select().from(catalogItems).where(eq(catalogItems.active, true)).orderBy(asc(catalogItems.sku));
}

/** The active kits among `skus`, keyed by SKU (unknown or inactive SKUs are absent). */
export async function findCatalogItems(db: Database<typeof schema>, skus: string[]): Promise<Map<string, CatalogItem>> {
  if (skus.length === 0) return new Map();
  const rows = await db.select().from(catalogItems).where(inArray(catalogItems.sku, skus));
  return new Map(rows.filter((row) => row.active).map((row) => [row.sku, row]));
}
