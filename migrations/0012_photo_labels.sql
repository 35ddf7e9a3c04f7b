-- Species and breeds read from each photo by the model that embedded it (its ImageNet logits,
-- in the same run), stored beside the embedding: one blob, one model, one row. NULL for vectors
-- made before this migration or by a model without logits. Breeds: the top few of the predicted
-- species, as ImageNet classes with their probabilities (same order).
ALTER TABLE embeddings ADD COLUMN species text CHECK (species IN ('dog', 'cat', 'other'));
ALTER TABLE embeddings ADD COLUMN species_probability real;
ALTER TABLE embeddings ADD COLUMN breed_classes smallint[];
ALTER TABLE embeddings ADD COLUMN breed_probabilities real[];
-- Breed filters and the text query find the photos of a breed without reading every row.
CREATE INDEX embeddings_breeds_idx ON embeddings USING gin (breed_classes);
