DROP TABLE IF EXISTS catalog_invalidations;
