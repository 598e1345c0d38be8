-- The starting catalog of DIY kits. Prices in euro cents.
INSERT INTO "catalog_items" ("sku", "name", "description", "price_cents", "currency") VALUES
  ('KIT-SHELF-01', 'Floating shelf kit', 'Oak board, hidden brackets and fixings for one 80 cm floating shelf.', 4900, 'EUR'),
  ('KIT-BIRDHOUSE-01', 'Birdhouse kit', 'Pre-cut cedar panels, nails and a mounting bracket.', 2450, 'EUR'),
  ('KIT-PLANTER-01', 'Raised planter kit', 'Larch planks, corner posts and liner for a 120 × 60 cm bed.', 8900, 'EUR'),
  ('KIT-WORKBENCH-01', 'Workbench kit', 'Beech top, steel legs and a vice mount for a 150 cm bench.', 32900, 'EUR'),
  ('KIT-LAMP-01', 'Concrete lamp kit', 'Mould, rapid-set concrete, E27 socket and a braided cable.', 3950, 'EUR'),
  ('KIT-STOOL-01', 'Step stool kit', 'Birch plywood parts, dowels and glue for a two-step stool.', 5500, 'EUR')
ON CONFLICT ("sku") DO NOTHING;
