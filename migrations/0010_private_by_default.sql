-- What a finder shares stays theirs, and stored positions cannot break a search (issue 23).

-- 1. Repair positions stored before the edge checked them. PostgreSQL's CHECKs kept positions in
-- range, but a subnormal one (longitude 1e-200) made the distance of every place search that
-- reached it underflow (an error, so a 500 for everybody). Positions are kept to 1e-7 degrees
-- (about 1 cm), so nothing smaller than that is left to underflow; anything not a number goes.
UPDATE reports SET latitude = NULL, longitude = NULL
WHERE latitude IS NOT NULL
  AND (latitude = 'NaN' OR longitude = 'NaN' OR abs(latitude) > 90 OR abs(longitude) > 180);
UPDATE reports
SET latitude = round(latitude::numeric, 7)::double precision,
    longitude = round(longitude::numeric, 7)::double precision
WHERE latitude IS NOT NULL
  AND (latitude <> round(latitude::numeric, 7)::double precision
       OR longitude <> round(longitude::numeric, 7)::double precision);
-- New rows are rounded the same way on insert; this refuses anything tiny that bypasses it.
ALTER TABLE reports ADD CONSTRAINT reports_position_not_tiny
    CHECK ((latitude = 0 OR abs(latitude) >= 1e-7) AND (longitude = 0 OR abs(longitude) >= 1e-7));

-- 2. The public position: rounded to 0.01 degree (1.1 km of latitude, at most 1.1 km of longitude).
-- It is what anyone but the owner and the tenant sees, and what place filters test, so that the
-- answers to many place searches reveal nothing finer than it. Computed here, once, so that what is
-- shown and what is filtered on can never disagree.
ALTER TABLE reports
    ADD COLUMN public_latitude double precision
        GENERATED ALWAYS AS (round(latitude::numeric, 2)::double precision) STORED,
    ADD COLUMN public_longitude double precision
        GENERATED ALWAYS AS (round(longitude::numeric, 2)::double precision) STORED;
CREATE INDEX reports_public_latitude_idx ON reports (public_latitude) WHERE public_latitude IS NOT NULL;

-- 3. A reporter may publish the contact on purpose; by default only the owner and the tenant see it.
ALTER TABLE reports ADD COLUMN contact_public boolean NOT NULL DEFAULT false;

-- 4. Messages to a report's owner, relayed instead of a published contact. Read by the owner,
-- newest first; deleted with the report.
CREATE TABLE report_messages (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id   uuid        NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    body        text        NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
    reply_to    text        CHECK (char_length(reply_to) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_messages_report_idx ON report_messages (report_id, id DESC);

-- 5. Limits of the open service (no API keys): bytes of photos uploaded per client address per
-- UTC day, and the bytes that reports without a tenant hold in all (one row, reserved like a
-- tenant's quota; released when a report is deleted).
CREATE TABLE upload_usage (
    address  text   NOT NULL,
    day      date   NOT NULL,
    bytes    bigint NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (address, day)
);
CREATE INDEX upload_usage_day_idx ON upload_usage (day);

CREATE TABLE open_storage (
    id          smallint PRIMARY KEY CHECK (id = 1),
    used_bytes  bigint   NOT NULL CHECK (used_bytes >= 0)
);
-- Reports stored before this charged nothing: charge them their photos as uploaded.
UPDATE reports r
SET charged_bytes = (SELECT coalesce(sum(b.bytes), 0) FROM photos p JOIN blobs b ON b.sha256 = p.sha256
                     WHERE p.report_id = r.id)
WHERE r.tenant_id IS NULL;
INSERT INTO open_storage (id, used_bytes)
SELECT 1, coalesce(sum(charged_bytes), 0) FROM reports WHERE tenant_id IS NULL;
