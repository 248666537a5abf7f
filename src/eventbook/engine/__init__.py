"""The command side: deciders, the command engine, snapshots, the time machine and replicas."""

from eventbook.engine.codec import parse_command, state_hash
from eventbook.engine.engine import Engine, Outcome
from eventbook.engine.folding import AppState, Folded, Target
from eventbook.engine.history import HistoryEntry
from eventbook.engine.model import (
    Application,
    Command,
    CommandRejected,
    Context,
    Decider,
    Decision,
    Rejected,
)
from eventbook.engine.provenance import AUDIT_FIELDS, AuditPolicy
from eventbook.engine.replica import Replica

__all__ = [
    "AUDIT_FIELDS",
    "AppState",
    "Application",
    "AuditPolicy",
    "Command",
    "CommandRejected",
    "Context",
    "Decider",
    "Decision",
    "Engine",
    "Folded",
    "HistoryEntry",
    "Outcome",
    "Rejected",
    "Replica",
    "Target",
    "parse_command",
    "state_hash",
]
