CREATE TABLE "inbox" (
	"consumer_group" text NOT NULL,
	"event_id" uuid NOT NULL,
	"processed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "inbox_consumer_group_event_id_pk" PRIMARY KEY("consumer_group","event_id")
);
--> statement-breakpoint
CREATE TABLE "index_queue" (
	"post_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"version" integer NOT NULL,
	"text" text NOT NULL,
	"title" text NOT NULL,
	"excerpt" text NOT NULL,
	"author_id" uuid NOT NULL,
	"author_username" text,
	"tags" text[] NOT NULL,
	"post_created_at" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"claimed_by" text,
	"lease_until" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"batch_id" uuid,
	"queued_at" timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "index_queue_post_id_generation_pk" PRIMARY KEY("post_id","generation"),
	CONSTRAINT "index_queue_status_check" CHECK ("index_queue"."status" in ('pending', 'claimed', 'done', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "outbox" (
	"id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"destination" text NOT NULL,
	"key" text NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
	"available_at" timestamp with time zone DEFAULT now() NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"sent_at" timestamp with time zone,
	CONSTRAINT "outbox_kind_check" CHECK ("outbox"."kind" in ('event', 'task'))
);
--> statement-breakpoint
CREATE TABLE "post_tombstones" (
	"post_id" uuid PRIMARY KEY NOT NULL,
	"version" integer NOT NULL,
	"deleted_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "post_vectors" (
	"id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"post_id" uuid NOT NULL,
	"version" integer NOT NULL,
	"title" text NOT NULL,
	"excerpt" text NOT NULL,
	"author_id" uuid NOT NULL,
	"author_username" text,
	"tags" text[] NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"embedding" vector(256) NOT NULL,
	"model" text NOT NULL,
	"indexed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "post_vectors_post_id_generation_pk" PRIMARY KEY("post_id","generation")
);
--> statement-breakpoint
CREATE TABLE "search_state" (
	"id" integer PRIMARY KEY NOT NULL,
	"active_generation" integer DEFAULT 1 NOT NULL,
	"active_model" text,
	"building_generation" integer,
	"building_started_at" timestamp with time zone,
	"switched_at" timestamp with time zone,
	CONSTRAINT "search_state_single_row" CHECK ("search_state"."id" = 1)
);
--> statement-breakpoint
CREATE INDEX "inbox_processed_at_idx" ON "inbox" USING btree ("processed_at");--> statement-breakpoint
CREATE INDEX "index_queue_pending_idx" ON "index_queue" USING btree ("queued_at") WHERE "index_queue"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "index_queue_claimed_idx" ON "index_queue" USING btree ("lease_until") WHERE "index_queue"."status" = 'claimed';--> statement-breakpoint
CREATE INDEX "index_queue_batch_idx" ON "index_queue" USING btree ("batch_id") WHERE "index_queue"."status" = 'claimed';--> statement-breakpoint
CREATE INDEX "index_queue_failed_idx" ON "index_queue" USING btree ("post_id","generation") WHERE "index_queue"."status" = 'failed';--> statement-breakpoint
CREATE INDEX "index_queue_generation_status_idx" ON "index_queue" USING btree ("generation","status");--> statement-breakpoint
CREATE INDEX "outbox_pending_idx" ON "outbox" USING btree ("created_at","id") WHERE "outbox"."sent_at" is null;--> statement-breakpoint
CREATE INDEX "outbox_pending_key_idx" ON "outbox" USING btree ("destination","key","created_at") WHERE "outbox"."sent_at" is null;--> statement-breakpoint
CREATE INDEX "outbox_sent_idx" ON "outbox" USING btree ("sent_at") WHERE "outbox"."sent_at" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "post_vectors_id_generation_idx" ON "post_vectors" USING btree ("id","generation");--> statement-breakpoint
CREATE INDEX "post_vectors_embedding_hnsw_idx" ON "post_vectors" USING hnsw ("embedding" vector_cosine_ops) WITH (m=16,ef_construction=64);--> statement-breakpoint
CREATE INDEX "post_vectors_tags_idx" ON "post_vectors" USING gin ("tags");