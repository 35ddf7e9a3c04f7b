-- pgvector, and the registry of models whose embeddings the database holds.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE models (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    version     text        NOT NULL,
    dim         integer     NOT NULL CHECK (dim > 0),
    sha256      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);
