"""API tokens: who may call the HTTP API, with which role, kept hashed at rest.

A token is 32 random bytes, shown once when it is created (`eb_` + URL-safe base64). The file
keeps, per token, an id, a name (the actor recorded with every write made with it), a role and
the SHA-256 of the token — enough to check one, not to recover one. (A token has 256 bits of
entropy, so a fast hash is enough: there is no password to guess.) Roles: `read` (GET),
`write` (read + commands and appends), `admin` (write + what administrators do).

The file is JSON, written whole to a temporary file, fsynced and renamed over the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from eventbook.errors import InvalidInput

ROLES = ("read", "write", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
PREFIX = "eb_"


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: str
    sha256: str
    created_at: str
    revoked_at: str | None = None

    def allows(self, role: str) -> bool:
        return self.revoked_at is None and _RANK[self.role] >= _RANK[role]

    def public(self) -> dict[str, str | None]:
        return {k: v for k, v in asdict(self).items() if k != "sha256"}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens of one server, in a JSON file (created on the first `create`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._records: dict[str, TokenRecord] = {}
        self._by_digest: dict[str, TokenRecord] = {}
        self._mtime: float | None = None
        self._load()

    def _load(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._records, self._by_digest, self._mtime = {}, {}, None
            return
        if stat.st_mtime == self._mtime:
            return
        try:
            rows = json.loads(self.path.read_text())
            records = [TokenRecord(**row) for row in rows["tokens"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"token file {self.path} is not eventbook's ({exc})") from None
        self._records = {r.id: r for r in records}
        self._by_digest = {r.sha256: r for r in records}
        self._mtime = stat.st_mtime

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"tokens": [asdict(r) for r in self._records.values()]}, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._mtime = self.path.stat().st_mtime
        self._by_digest = {r.sha256: r for r in self._records.values()}

    def create(self, name: str, role: str) -> tuple[TokenRecord, str]:
        """A new token: its record, and the token itself (shown this once)."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput(
                f"token name {name!r} is not allowed: 1-64 letters, digits, '_', '.', '@' or '-'"
            )
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        token = PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            self._load()
            record = TokenRecord(
                id=secrets.token_hex(4),
                name=name,
                role=role,
                sha256=_digest(token),
                created_at=datetime.now(UTC).isoformat(),
            )
            self._records[record.id] = record
            self._save()
        return record, token

    def list(self) -> list[TokenRecord]:
        with self._lock:
            self._load()
            return sorted(self._records.values(), key=lambda r: r.created_at)

    def revoke(self, token_id: str) -> TokenRecord:
        with self._lock:
            self._load()
            record = self._records.get(token_id)
            if record is None:
                raise InvalidInput(f"no token with id {token_id!r}; `eventbook tokens list`")
            if record.revoked_at is None:
                record = TokenRecord(
                    **{**asdict(record), "revoked_at": datetime.now(UTC).isoformat()}
                )
                self._records[token_id] = record
                self._save()
            return record

    def check(self, token: str) -> TokenRecord | None:
        """The record of a presented token (revoked ones included), None if unknown."""
        with self._lock:
            self._load()
            digest = _digest(token)
            record = self._by_digest.get(digest)
            if record is None or not hmac.compare_digest(record.sha256, digest):
                return None
            return record


__all__ = ["PREFIX", "ROLES", "TokenRecord", "TokenStore"]
