-- The events table (seed 004's columns, plus position, version, both times, commit id and
-- metadata), the commits that carry an id or metadata, and the two sequences the append
-- function reserves under its latch. @schema@ is the store's schema (a quoted identifier).

CREATE SEQUENCE @schema@.positions AS bigint START 1 CACHE 1;
-- recorded_at in microseconds since the epoch, the latest handed out: recorded_at never
-- decreases along positions even when the server's clock steps back.
CREATE SEQUENCE @schema@.recorded_us AS bigint MINVALUE 0 START 0 CACHE 1;

CREATE TABLE @schema@.events (
    position bigint PRIMARY KEY,
    stream text COLLATE "C" NOT NULL,
    -- seed 004: the aggregate's type and id, from the stream id "type-id" (both the whole id
    -- when it has no "-").
    entity_type text COLLATE "C" NOT NULL GENERATED ALWAYS AS (split_part(stream, '-', 1)) STORED,
    entity_id text COLLATE "C" NOT NULL
        GENERATED ALWAYS AS (substr(stream, strpos(stream, '-') + 1)) STORED,
    version integer NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    -- json, not jsonb: the text is kept as written, so every number reads back as it was
    -- (jsonb prints 1e308 as 309 digits, which would read back as an integer).
    event_data json NOT NULL,
    metadata json NOT NULL,
    schema_version integer NOT NULL,
    recorded_at timestamptz NOT NULL,
    occurred_at timestamptz NOT NULL,
    commit_id text COLLATE "C",
    -- the writing transaction: readers take only events of transactions older than every
    -- transaction still running (docs/postgres.md, "Ordering")
    tx xid8 NOT NULL,
    UNIQUE (stream, version)
);


CREATE TABLE @schema@.commits (
    first_position bigint PRIMARY KEY,
    last_position bigint NOT NULL,
    commit_id text COLLATE "C" UNIQUE,
    digest bytea,
    metadata json
);
