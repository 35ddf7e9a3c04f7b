-- Stored "possible matches" between reports (computed in the background once a report's
-- embeddings are ready), and indexes for the filters of searches.
CREATE TABLE report_matches (
    report_id          uuid        NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    matched_report_id  uuid        NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    model_id           integer     NOT NULL REFERENCES models (id),
    score              real        NOT NULL,
    photo_id           uuid        NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    matched_photo_id   uuid        NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (report_id, matched_report_id, model_id)
);
CREATE INDEX report_matches_matched_idx ON report_matches (matched_report_id);
CREATE INDEX photos_report_idx ON photos (report_id);
CREATE INDEX reports_status_kind_idx ON reports (status, kind, species);
