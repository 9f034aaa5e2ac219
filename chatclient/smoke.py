"""``make smoke``: a post-deploy check of one deployment, through its public APIs only.

Checks, in order, and stops at the first failure: health without a token; a token is refused
without it and accepted with it; session create, read, rename, list; one streamed turn whose
frames reassemble to the stored answer; session delete. Prints one line per check and exits 0,
or names the failed check and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable

import httpx

from chatclient.client import ApiError, AssistantClient
from chatclient.connection import NoServer, add_connection_options, checked, resolve
from chatclient.safe import clean

PROMPT = "Smoke test: answer in one short sentence."


class CheckFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def run_checks(client: AssistantClient, report: Callable[[str], None]) -> bool:
    state: dict[str, str] = {}

    def health() -> None:
        expect(client.health().get("status") == "ok", "status is not ok")

    def auth() -> None:
        anonymous = httpx.get(f"{client.rest_url}/api/v1/sessions", timeout=30)
        expect(anonymous.status_code == 401, f"no token answered {anonymous.status_code}")
        client.sessions(limit=1)

    def create() -> None:
        session = client.create_session("smoke test")
        state["id"] = session["session_id"]
        expect(client.session(state["id"])["title"] == "smoke test", "title not stored")
        expect(client.rename(state["id"], "smoke test 2")["title"] == "smoke test 2", "rename")
        listed = [s["session_id"] for s in client.sessions(limit=100)]
        expect(state["id"] in listed, "the new session is not listed")

    def streamed_turn() -> None:
        turn = client.stream(state["id"], PROMPT)
        chunks = list(turn)
        expect(bool(chunks), "no chunk frame")
        expect(bool(turn.end), "no end frame")
        stored = client.messages(state["id"])
        expect(len(stored) >= 2 and stored[-1]["role"] == "assistant", "answer not stored")
        expect(stored[-1]["content"] == "".join(chunks), "stored answer differs from the stream")

    def delete() -> None:
        client.delete(state["id"])
        try:
            client.session(state["id"])
        except ApiError as error:
            expect(error.kind == "not_found", f"deleted session answered {error}")
            return
        raise CheckFailed("the deleted session is still there")

    checks = [
        ("health", health),
        ("auth", auth),
        ("session crud", create),
        ("streamed turn", streamed_turn),
        ("delete", delete),
    ]
    for name, check in checks:
        try:
            check()
        except (CheckFailed, ApiError, KeyError, ValueError) as error:
            report(f"FAILED {name}: {clean(error)}")
            if "id" in state and name != "delete":
                with contextlib.suppress(ApiError):
                    client.delete(state["id"])
            return False
        report(f"ok     {name}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make smoke", description="Check a deployment (or the dev server) end to end."
    )
    add_connection_options(parser)
    try:
        connection = resolve(parser.parse_args(argv))
        client = connection.client()
    except NoServer as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        if connection.local:
            checked(connection, client)  # a dev server that stopped is said so, not "FAILED"
        passed = run_checks(client, print)
    except NoServer as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print("smoke test passed" if passed else "smoke test failed")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
