"""The query side: projections keep read models up to date from the log (seed 002's CQRS)."""

from eventbook.projections.model import (
    Generation,
    Projection,
    ProjectionStatus,
    RecordedBatch,
    projection,
)
from eventbook.projections.runner import ProjectionRunner, ProjectionStopped

__all__ = [
    "Generation",
    "Projection",
    "ProjectionRunner",
    "ProjectionStatus",
    "ProjectionStopped",
    "RecordedBatch",
    "projection",
]
