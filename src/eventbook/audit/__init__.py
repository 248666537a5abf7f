"""Audit: who did what and why, and proofs that the recorded history is what the code decides.

- `audit_trail(store, AuditQuery(stream=..., actor=..., correlation=..., recorded_from=...,
  recorded_to=...))`: the commands, who issued them, why, and what they produced;
- `verify_redecide(app, store)`: every recorded command decided again (recorded `now` and
  seed, the state just before it) must yield the recorded events or rejection;
- `what_if(fixed_app, store, after=P)` and `book_corrections(...)`: how the state would stand
  under corrected deciders, and the compensation booked by appending (never by editing).

Verification by replay (snapshots, cut-offs and replicas against a fresh fold) is
`eventbook.engine.verification.verify_replay`. A use case beside the engine: it imports the
engine, the store port, the core and the leaves, never a backend or an edge.
"""

from eventbook.audit.commits import Commit, group_commits, read_commits
from eventbook.audit.redecision import Mismatch, RedecideReport, verify_redecide
from eventbook.audit.trail import AuditEntry, AuditQuery, audit_trail
from eventbook.audit.whatif import (
    Booked,
    StreamDifference,
    WhatIfReport,
    book_corrections,
    what_if,
)

__all__ = [
    "AuditEntry",
    "AuditQuery",
    "Booked",
    "Commit",
    "Mismatch",
    "RedecideReport",
    "StreamDifference",
    "WhatIfReport",
    "audit_trail",
    "book_corrections",
    "group_commits",
    "read_commits",
    "verify_redecide",
    "what_if",
]
