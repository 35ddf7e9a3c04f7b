-- Reports with photos; photo bytes are content-addressed (blobs), so identical photos are stored
-- once and embedded once per model; durable jobs for the background work.

CREATE TABLE reports (
    id                uuid PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN ('lost', 'found', 'sighting')),
    species           text        NOT NULL CHECK (species IN ('dog', 'cat', 'other')),
    title             text        NOT NULL,
    description       text        NOT NULL DEFAULT '',
    latitude          double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude         double precision CHECK (longitude BETWEEN -180 AND 180),
    contact           text,
    status            text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    owner_token_hash  bytea       NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
CREATE INDEX reports_created_idx ON reports (created_at DESC, id DESC);
CREATE INDEX reports_kind_species_idx ON reports (kind, species, created_at DESC);

CREATE TABLE blobs (
    sha256         bytea       PRIMARY KEY,
    storage_key    text        NOT NULL,
    thumbnail_key  text        NOT NULL,
    format         text        NOT NULL,
    width          integer     NOT NULL,
    height         integer     NOT NULL,
    bytes          bigint      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE photos (
    id          uuid        PRIMARY KEY,
    report_id   uuid        NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    position    integer     NOT NULL,
    sha256      bytea       NOT NULL REFERENCES blobs (sha256),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (report_id, position)
);
CREATE INDEX photos_sha256_idx ON photos (sha256);

CREATE TABLE embeddings (
    sha256      bytea        NOT NULL REFERENCES blobs (sha256),
    model_id    integer      NOT NULL REFERENCES models (id),
    embedding   vector(1280) NOT NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (sha256, model_id)
);
CREATE INDEX embeddings_hnsw_idx ON embeddings USING hnsw (embedding vector_cosine_ops);

CREATE TABLE jobs (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text        NOT NULL,
    -- One job per piece of work (e.g. embed blob X with model Y), whoever asks for it.
    dedupe_key    text        NOT NULL UNIQUE,
    payload       jsonb       NOT NULL,
    status        text        NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL,
    run_after     timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz,
    locked_by     text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
-- Claiming scans only unfinished jobs.
CREATE INDEX jobs_claim_idx ON jobs (run_after, id) WHERE status IN ('queued', 'running');
