-- Deletion that deletes, jobs that know their model, and matches read by rank.

-- Each model's vectors get their own partial HNSW index, made by the service when it registers
-- the model (`Store::ensure_model_index`): one index over every model's vectors mixes them in one
-- graph, and a search for one model walks the others'.
DROP INDEX IF EXISTS embeddings_hnsw_idx;

-- The model a job works for (NULL for work of no model, such as deleting a photo); a process
-- claims only jobs of its own model, so processes with different models share one queue.
ALTER TABLE jobs ADD COLUMN model_id integer;
UPDATE jobs SET model_id = (payload->>'model_id')::integer WHERE payload ? 'model_id';

-- Times a job was put back for a transient failure (an outage) without counting an attempt; the
-- delay before its next try grows with it.
ALTER TABLE jobs ADD COLUMN deferrals integer NOT NULL DEFAULT 0;

-- Blobs' objects are found by key when the sweep reconciles the photo store with this table.
CREATE UNIQUE INDEX blobs_storage_key_idx ON blobs (storage_key);
CREATE UNIQUE INDEX blobs_thumbnail_key_idx ON blobs (thumbnail_key);

-- A report's possible matches are read best first, a page at a time, and trimmed to the cap.
CREATE INDEX report_matches_rank_idx ON report_matches (report_id, model_id, score DESC);
