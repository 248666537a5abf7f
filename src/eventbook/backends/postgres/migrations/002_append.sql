-- append(): one commit, in one statement (so in one transaction of its own in autocommit).
--
-- 1. Lock what the commit reads: each stream it writes or names in `expected`, and its commit
--    id, with transaction-level advisory locks taken in one order (no deadlock). Advisory locks
--    assign no transaction id. Writers of other streams are not held up.
-- 2. A commit id seen before answers with the first commit ('duplicate'), or 'reused' when
--    the content digest differs. Nothing is written.
-- 3. Expected versions, in the caller's order; the first that fails answers 'conflict' with
--    the stream and its version. Nothing is written, no position is used.
-- 4. The latch (docs/postgres.md, "Ordering"): under one session-level advisory lock, held
--    for microseconds and never across I/O or commit, the transaction takes its id and its
--    positions (and its recorded time). So among writers, transaction-id order is position
--    order, and a reader that takes only events of transactions older than every running one
--    (tx < pg_snapshot_xmin) reads a growing prefix of the log: it never skips an event whose
--    transaction commits late.
-- 5. The rows. A commit with an id or metadata also gets a row in commits.
--
-- p_expected codes: -1 any, -2 exists, N >= 0 exactly N (0 is no-stream).

CREATE FUNCTION @schema@.append(
    p_streams text[],  -- each event's stream, in order (for the locks, without parsing)
    p_events json,     -- [{"t": type, "d": data, "m": metadata, "o": occurred_at or null,
                       --   "i": event id, "v": schema version}, ...] in the same order
    p_expected_streams text[],
    p_expected bigint[],
    p_commit_id text,
    p_digest bytea,
    p_commit_metadata text,
    p_now timestamptz,  -- the caller's clock (tests); NULL: the server's clock_timestamp()
    OUT o_status text,
    OUT o_first bigint,
    OUT o_last bigint,
    OUT o_recorded_at timestamptz,
    OUT o_streams text[],   -- ok: every stream named; conflict: the stream that failed
    OUT o_versions bigint[]  -- their versions before the commit
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_count integer := cardinality(p_streams);
    v_names text[];
    v_base bigint[];
    v_key bigint;
    v_version bigint;
    v_want bigint;
    v_now_us bigint;
    v_seen record;
BEGIN
    -- 1
    SELECT array_agg(DISTINCT s ORDER BY s) INTO v_names
        FROM unnest(p_streams || coalesce(p_expected_streams, '{}')) AS s;
    FOR v_key IN
        SELECT DISTINCT k FROM (
            SELECT hashtextextended(@schema_text@ || ':s:' || s, 0) AS k FROM unnest(v_names) AS s
            UNION ALL
            SELECT hashtextextended(@schema_text@ || ':c:' || p_commit_id, 0)
                WHERE p_commit_id IS NOT NULL
        ) AS keys ORDER BY k
    LOOP
        PERFORM pg_advisory_xact_lock(v_key);
    END LOOP;

    -- 2
    IF p_commit_id IS NOT NULL THEN
        SELECT c.first_position, c.last_position, c.digest INTO v_seen
            FROM @schema@.commits AS c WHERE c.commit_id = p_commit_id;
        IF FOUND THEN
            o_status := CASE WHEN v_seen.digest = p_digest THEN 'duplicate' ELSE 'reused' END;
            o_first := v_seen.first_position;
            o_last := v_seen.last_position;
            RETURN;
        END IF;
    END IF;

    -- 3
    SELECT array_agg(
        (SELECT coalesce(max(e.version), 0) FROM @schema@.events AS e WHERE e.stream = n.s)
        ORDER BY n.i)
        INTO v_base
        FROM unnest(v_names) WITH ORDINALITY AS n(s, i);
    FOR i IN 1 .. coalesce(cardinality(p_expected_streams), 0) LOOP
        v_version := v_base[array_position(v_names, p_expected_streams[i])];
        v_want := p_expected[i];
        IF NOT (v_want = -1 OR (v_want = -2 AND v_version > 0) OR v_want = v_version) THEN
            o_status := 'conflict';
            o_streams := ARRAY[p_expected_streams[i]];
            o_versions := ARRAY[v_version];
            RETURN;
        END IF;
    END LOOP;

    -- 4
    BEGIN
        PERFORM pg_advisory_lock(@latch_key@);
        PERFORM pg_current_xact_id();
        o_first := nextval('@schema@.positions');
        IF v_count > 1 THEN
            PERFORM setval('@schema@.positions', o_first + v_count - 1);
        END IF;
        v_now_us := greatest(
            (extract(epoch FROM coalesce(p_now, clock_timestamp())) * 1000000)::bigint,
            (SELECT r.last_value FROM @schema@.recorded_us AS r));
        PERFORM setval('@schema@.recorded_us', v_now_us);
        PERFORM pg_advisory_unlock(@latch_key@);
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_advisory_unlock(@latch_key@);
        RAISE;
    END;
    o_last := o_first + v_count - 1;
    o_recorded_at := timestamptz 'epoch' + v_now_us * interval '1 microsecond';

    -- 5
    INSERT INTO @schema@.events (position, stream, version, event_id, event_type, event_data,
                                 metadata, schema_version, recorded_at, occurred_at, commit_id, tx)
    SELECT o_first + u.i - 1,
           u.s,
           b.v + row_number() OVER (PARTITION BY u.s ORDER BY u.i),
           u.id,
           u.t,
           u.d,
           u.m,
           u.sv,
           o_recorded_at,
           coalesce(u.o, o_recorded_at),
           p_commit_id,
           pg_current_xact_id()
    FROM ROWS FROM (
             unnest(p_streams),
             json_to_recordset(p_events) AS (t text, d json, m json, o timestamptz, i text, v integer)
         ) WITH ORDINALITY AS u(s, t, d, m, o, id, sv, i)
    JOIN unnest(v_names, v_base) AS b(s, v) ON b.s = u.s;

    IF p_commit_id IS NOT NULL OR p_commit_metadata IS NOT NULL THEN
        INSERT INTO @schema@.commits (first_position, last_position, commit_id, digest, metadata)
        VALUES (o_first, o_last, p_commit_id, p_digest, p_commit_metadata::json);
    END IF;

    o_streams := v_names;  -- every stream named, with its version before the commit: the
    o_versions := v_base;  -- caller adds the commit's events to get the new versions
    o_status := 'ok';
END;
$fn$;
