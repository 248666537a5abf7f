"""The HTTP API (Starlette): `create_app(application, store, tokens=...)`, served by
`eventbook serve`. See docs/http.md. Needs the `http` extra (starlette, uvicorn)."""

from eventbook.http.app import create_app
from eventbook.http.tokens import ROLES, TokenRecord, TokenStore

__all__ = ["ROLES", "TokenRecord", "TokenStore", "create_app"]
