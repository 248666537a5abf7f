"""Every limit of eventbook, in one place, named with the qualifier last.

Input from outside is checked against these before anything is written; loops and
queues over outside input are bounded by them.
"""

from __future__ import annotations

# Identifiers
stream_id_bytes_max = 255  # UTF-8 bytes of a stream id
type_name_chars_max = 128  # characters of an event type name
commit_id_chars_max = 128  # characters of a commit id
event_id_chars_max = 64  # characters of an event id

# Payloads
event_data_bytes_max = 1024 * 1024  # encoded bytes of one event's data
event_metadata_bytes_max = 64 * 1024  # encoded bytes of one event's metadata
commit_metadata_bytes_max = 64 * 1024  # encoded bytes of a commit's metadata
commit_bytes_max = 16 * 1024 * 1024  # encoded bytes of one commit (all its events)
data_depth_max = 32  # nesting depth of data and metadata
schema_version_max = 65535

# Integers in data must fit a signed 64-bit integer (JSON, JSONB and MessagePack agree there).
data_int_min = -(2**63)
data_int_max = 2**63 - 1

# Commits
append_batch_count_max = 10_000  # events in one commit
expected_streams_count_max = 1_000  # streams named in one commit's expected map

# Reads
read_page_count_max = 4096  # events fetched per page by lazy readers
read_chunk_bytes = 1024 * 1024  # bytes read at once when scanning a segment

# Embedded log
segment_bytes_max = 256 * 1024 * 1024  # a segment rolls over before exceeding this
segment_allocate_bytes = 16 * 1024 * 1024  # space reserved ahead of the writer at a time
group_commit_wait_seconds_max = 0.0002  # a batch waits at most this for last batch's appenders
index_commit_events_max = 4096  # stream index rows in memory that wake the flusher (4x: help)
stream_cache_count_max = 200_000  # stream versions cached in the writer
subscription_poll_seconds_max = 0.05  # cross-process followers poll at most this long

# Waits
wait_seconds_max = 3600.0  # longest bounded wait a caller may ask for

# Commands (the engine)
command_id_chars_max = 100  # characters of a command id (its commit id is "cmd:" + it)
engine_cache_streams_max = 100_000  # stream states an engine keeps in memory

# Audit (audit/ and the engine's audit fields)
audit_actor_chars_max = 200  # characters of a command's actor (a person, token or service)
audit_reason_chars_max = 1000  # characters of the reason given with a command
audit_mismatches_max = 100  # differences a verification lists (the rest are counted)
audit_corrects_max = 1000  # commit ids one booked correction names (the rest are counted)

# Projections
projection_batch_events_max = 4096  # events applied in one read-model transaction

# Outbox (publishing to a broker)
outbox_batch_events_max = 1000  # events one relay batch publishes before it awaits the acks
outbox_fetch_count_max = 1000  # messages one consumer fetch takes from the broker
outbox_workers_max = 64  # parallel partitions of one consumer

# Sagas
saga_batch_events_max = 512  # log events a saga runner offers its saga per round (one commit)
saga_instances_cached_max = 100_000  # saga instances a runner keeps folded in memory

# Bitemporal books (temporal/)
temporal_lateness_max_days = 366  # the longest max_lateness a calendar may set
temporal_hour_cache_max = 100_000  # local-hour names a calendar keeps cached
temporal_causes_max = 1000  # event ids one correction or adjustment lists (the rest counted)
temporal_notices_per_commit_max = 1000  # notices one commit of an advance appends
temporal_plot_periods_max = 400  # periods one `eventbook report --plot` draws

# HTTP API (http/)
http_body_bytes_max = 2 * 1024 * 1024  # a request body (a command, an append)
http_log_count_max = 1000  # events one GET /log or GET /streams/{id} returns
http_idempotency_key_chars_max = 128  # an Idempotency-Key header (it becomes a command id)
http_sse_heartbeat_seconds = 15.0  # a comment line on a quiet Server-Sent Events stream
http_wait_seconds_max = 10.0  # how long a read-your-writes request may wait
http_command_threads = 64  # commands the HTTP server runs at once (waiting for their fsync)
http_sse_buffer_events_max = 20_000  # encoded events the shared SSE tail keeps for subscribers
