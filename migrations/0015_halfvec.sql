-- Stored vectors as halfvec (2 bytes a dimension instead of 4): half the table and half the HNSW
-- index memory, with the same recall@10 against exact search in benches/million.sql (README,
-- "The store at a million photos"). Each model's partial HNSW index is built over the old type, so
-- it is dropped here and made again over halfvec (halfvec_cosine_ops) by the service when it
-- registers the model (Store::ensure_model_index). Queries cast the query vector to halfvec so the
-- index serves them. The column keeps its dimension, whatever it was migrated to.
DO $$
DECLARE
  idx text;
  dim int;
BEGIN
  FOR idx IN SELECT indexname FROM pg_indexes
             WHERE schemaname = current_schema() AND tablename = 'embeddings'
               AND indexname LIKE 'embeddings\_hnsw\_model\_%'
  LOOP
    EXECUTE format('DROP INDEX %I', idx);
  END LOOP;
  SELECT atttypmod INTO dim FROM pg_attribute
  WHERE attrelid = 'embeddings'::regclass AND attname = 'embedding' AND NOT attisdropped;
  EXECUTE format('ALTER TABLE embeddings ALTER COLUMN embedding TYPE halfvec(%s) USING embedding::halfvec(%s)',
                 dim, dim);
END $$;
