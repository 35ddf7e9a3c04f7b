-- Tenants (one per API key) and their photo storage quota. `used_bytes` only ever changes through
-- one conditional UPDATE (reserve) or a release, so concurrent uploads never over-commit.
CREATE TABLE tenants (
    id          text        PRIMARY KEY,
    max_bytes   bigint      NOT NULL CHECK (max_bytes >= 0),
    used_bytes  bigint      NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A report belongs to the tenant that created it (NULL when the service runs without API keys),
-- and remembers the bytes it was charged, which are released when it is deleted.
ALTER TABLE reports ADD COLUMN tenant_id text REFERENCES tenants (id);
ALTER TABLE reports ADD COLUMN charged_bytes bigint NOT NULL DEFAULT 0 CHECK (charged_bytes >= 0);
CREATE INDEX reports_tenant_created_idx ON reports (tenant_id, created_at DESC, id DESC);
