-- One column for vectors of any dimension: each index generation records its model and dimension,
-- and each dimension has a partial HNSW index of its own (pgvector's README, "Can I store vectors with
-- different dimensions in the same column?"). search-service makes the index of any other dimension
-- at start (hnsw-index.ts); this one holds the 256-dimension vectors the column was made for.
DROP INDEX "post_vectors_embedding_hnsw_idx";--> statement-breakpoint
ALTER TABLE "post_vectors" ALTER COLUMN "embedding" SET DATA TYPE vector;--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "post_vectors_embedding_hnsw_256" ON "post_vectors" USING hnsw (("embedding"::vector(256)) vector_cosine_ops) WITH (m=16,ef_construction=200) WHERE vector_dims("embedding") = 256;--> statement-breakpoint
ALTER TABLE "search_state" ADD COLUMN "active_dimensions" integer;--> statement-breakpoint
ALTER TABLE "search_state" ADD COLUMN "building_model" text;--> statement-breakpoint
ALTER TABLE "search_state" ADD COLUMN "building_dimensions" integer;--> statement-breakpoint
-- The generations that exist were embedded into vector(256); their model is the one their vectors name.
UPDATE "search_state" SET
  "active_model" = coalesce("active_model", (SELECT "model" FROM "post_vectors" WHERE "generation" = "active_generation" LIMIT 1)),
  "active_dimensions" = CASE WHEN "active_model" IS NOT NULL OR EXISTS (SELECT 1 FROM "post_vectors" WHERE "generation" = "active_generation") THEN 256 END,
  "building_model" = CASE WHEN "building_generation" IS NOT NULL THEN coalesce((SELECT "model" FROM "post_vectors" WHERE "generation" = "building_generation" LIMIT 1), "active_model") END,
  "building_dimensions" = CASE WHEN "building_generation" IS NOT NULL THEN 256 END;
