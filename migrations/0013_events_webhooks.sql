-- Webhooks (issue 26): where report events are delivered, and the log of every delivery attempt.
--
-- A target is the service-wide receiver (`default`, from --webhook-url: every report's events) or
-- a tenant's (`tenant:<id>`, from the API keys file: that tenant's reports' events). `serve`
-- writes them at start from its configuration, so any process's job workers can deliver; the
-- secret signs the deliveries and is never shown by the API.
CREATE TABLE webhook_targets (
    target       text        PRIMARY KEY,
    tenant_id    text,
    url          text        NOT NULL,
    secret       text        NOT NULL,
    max_attempts integer     NOT NULL CHECK (max_attempts > 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per delivery attempt, for operators (GET /v1/webhooks/deliveries); the newest are kept
-- (the worker deletes rows beyond a fixed count as it writes).
CREATE TABLE webhook_deliveries (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid        NOT NULL,
    event       text        NOT NULL,
    target      text        NOT NULL,
    url         text        NOT NULL,
    attempt     integer     NOT NULL,
    status_code integer,
    error       text,
    duration_ms integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (event_id);
