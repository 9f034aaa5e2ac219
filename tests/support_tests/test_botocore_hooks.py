"""The suite's shared answers about botocore's handlers (tests/support/botocore_hooks.py):
worked out once per process, and still the answers botocore itself gives."""

from __future__ import annotations

import inspect
from typing import Any

import botocore.hooks
import botocore.session
import pytest


def _signature_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    reads: list[object] = []
    read = inspect.getfullargspec

    def recording(func: Any) -> inspect.FullArgSpec:
        reads.append(func)
        return read(func)

    monkeypatch.setattr(inspect, "getfullargspec", recording)
    return reads


def _session_and_client() -> None:
    botocore.session.get_session().create_client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


def test_a_new_session_reads_no_handler_signature_an_earlier_one_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _session_and_client()
    reads = _signature_reads(monkeypatch)
    _session_and_client()
    # A callable object is read afresh (its class may change its signature); a function never,
    # though Powertools registers new closures for every session.
    functions = [f for f in reads if inspect.isfunction(getattr(f, "__func__", f))]
    assert functions == []
    assert reads, "no handler at all was registered: the test shows nothing"


def test_a_function_that_declares_its_signature_is_read_as_declared() -> None:
    def handler(**kwargs: Any) -> None: ...

    session = botocore.session.get_session()
    session.register("test-event.dynamodb", handler)
    handler.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    with pytest.raises(ValueError, match="must accept keyword arguments"):
        session.register("test-event.dynamodb", handler)


class _Handlers:
    def without_kwargs(self, params: Any) -> None: ...

    def with_kwargs(self, **kwargs: Any) -> None: ...


@pytest.mark.parametrize("attempt", ["first", "again"])
def test_a_handler_without_kwargs_is_still_refused(attempt: str) -> None:
    session = botocore.session.get_session()
    with pytest.raises(ValueError, match="must accept keyword arguments"):
        session.register("before-call.dynamodb", _Handlers().without_kwargs)
    with pytest.raises(ValueError, match="must accept keyword arguments"):
        session.register("before-call.dynamodb", lambda params: None)
    session.register("before-call.dynamodb", _Handlers().with_kwargs)


@pytest.mark.parametrize("attempt", ["first", "again"])
def test_a_renamed_services_events_still_reach_handlers_of_its_old_name(attempt: str) -> None:
    emitter = botocore.session.get_session().get_component("event_emitter")
    seen: list[str] = []
    emitter.register("test-event.apigateway", lambda **kwargs: seen.append("old name"))
    emitter.emit("test-event.api-gateway")
    assert seen == ["old name"]


def test_an_emitter_with_aliases_of_its_own_keeps_its_own_answers() -> None:
    own = botocore.hooks.EventAliaser(botocore.hooks.HierarchicalEmitter(), {"madeup": "other"})
    seen: list[str] = []
    own.register("test-event.madeup", lambda **kwargs: seen.append("madeup"))
    own.emit("test-event.other")
    default = botocore.session.get_session().get_component("event_emitter")
    default.register("test-event.madeup", lambda **kwargs: seen.append("default"))
    default.emit("test-event.other")
    assert seen == ["madeup"]


def test_a_new_session_knows_the_aliases_an_earlier_one_worked_out() -> None:
    botocore.session.get_session().get_component("event_emitter").emit("test-event.apigateway")
    later = botocore.session.get_session().get_component("event_emitter")
    assert later._alias_name_cache.get("test-event.apigateway") == "test-event.api-gateway"
