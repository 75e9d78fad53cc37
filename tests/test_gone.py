"""2013 means "not found" on the calls that name an existing task or file, and "invalid
parameters" elsewhere: one fact per (call, code), read from the facts table."""

from __future__ import annotations

from vidbatch import facts
from vidbatch.client import ERROR_CLASSES, Call, classify
from vidbatch.errors import InvalidRequestError, TaskGoneError


def _call(name: str) -> Call:
    return Call(name, "GET", "https://api.example/" + name, api_host=True)


def test_2013_on_query_and_retrieve_is_gone_elsewhere_invalid() -> None:
    assert classify(_call("query"), 200, 2013) is facts.ErrorKind.GONE
    assert classify(_call("retrieve"), 200, 2013) is facts.ErrorKind.GONE
    assert classify(_call("create"), 200, 2013) is facts.ErrorKind.INVALID_REQUEST
    assert ERROR_CLASSES[facts.ErrorKind.GONE] is TaskGoneError
    assert ERROR_CLASSES[facts.ErrorKind.INVALID_REQUEST] is InvalidRequestError
    fact = facts.error_fact(2013, "query")
    assert fact is not None and "--force" in fact.hint and "manifest" not in fact.hint
