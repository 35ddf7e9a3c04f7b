-- Photos are stored without their metadata (EXIF with GPS position, camera make and model, XMP,
-- IPTC, comments): an upload is cleaned before it is stored. A blob stored before has no time
-- here; the service queues a `strip_metadata` job for each such blob when its workers start,
-- which rewrites the blob's object without the metadata and sets the time.
ALTER TABLE blobs ADD COLUMN metadata_stripped_at timestamptz;
-- Every blob inserted from now on was cleaned on its way in.
ALTER TABLE blobs ALTER COLUMN metadata_stripped_at SET DEFAULT now();
-- The blobs still to clean are found without reading the others.
CREATE INDEX blobs_metadata_unstripped_idx ON blobs (sha256) WHERE metadata_stripped_at IS NULL;
