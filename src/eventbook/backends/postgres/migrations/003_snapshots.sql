-- Snapshots and day-end cut-offs beside the events (never in them), and small settings (the
-- application the CLI last ran on the store). A lost snapshot costs a longer replay, never a
-- fact.

CREATE TABLE @schema@.snapshots (
    key text COLLATE "C" NOT NULL,
    code_version text COLLATE "C" NOT NULL,
    position bigint NOT NULL,
    version bigint NOT NULL,
    recorded_at timestamptz,
    max_occurred_at timestamptz,
    schema_version integer NOT NULL,
    state bytea NOT NULL,
    state_hash text NOT NULL,
    label text NOT NULL,
    taken_at timestamptz,
    PRIMARY KEY (key, code_version, position)
);

CREATE TABLE @schema@.meta (
    name text PRIMARY KEY,
    value text NOT NULL
);
