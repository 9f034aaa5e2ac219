import pytest

from tests.support.events import EVENTS_DIR, load_event


def test_load_event_returns_the_recorded_sample() -> None:
    event = load_event("websocket-message")

    assert event["requestContext"]["routeKey"]
    assert "connectionId" in event["requestContext"]


def test_load_event_returns_an_independent_copy() -> None:
    first = load_event("rest-proxy-request")
    first["headers"]["Authorization"] = "changed"
    first["path"] = "/changed"

    second = load_event("rest-proxy-request")

    assert second["path"] != "/changed"
    assert second["headers"].get("Authorization") != "changed"


def test_missing_event_names_the_available_ones() -> None:
    with pytest.raises(FileNotFoundError) as error:
        load_event("no-such-event")

    assert str(EVENTS_DIR) in str(error.value)
    assert "websocket-connect" in str(error.value)
