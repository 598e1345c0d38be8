-- The single search_state row: searches read generation 1 until a reindex switches.
INSERT INTO "search_state" ("id", "active_generation") VALUES (1, 1) ON CONFLICT ("id") DO NOTHING;
