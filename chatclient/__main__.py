"""``make chat``: chat with the assistant in a terminal, answers streamed as they arrive.

Without ``--rest-url`` it talks to the dev server (``make dev``), with a token for ``--user``
signed by the dev server's key. With ``--rest-url``, ``--ws-url`` and ``--token`` (or
``AI_ASSISTANT_TOKEN``) it talks to any deployment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chatclient.client import ApiError, AssistantClient

ROOT = Path(__file__).resolve().parent.parent
DEV_STATE = ROOT / ".dev"
HELP = """Commands:
  /new [title]     start a new session
  /sessions        list your sessions
  /resume <n|id>   continue session n of the list (or by id) and show its history
  /rename <title>  rename the current session
  /delete          delete the current session
  /usage           your token budget and how many answers you may have generating
  /help            this text
  /quit            leave (Ctrl-D works too)
Anything else is sent to the assistant."""


def connection_from_args(argv: list[str] | None) -> tuple[argparse.Namespace, AssistantClient]:
    parser = argparse.ArgumentParser(prog="make chat", description=__doc__)
    parser.add_argument("--rest-url", help="the REST stage URL, e.g. https://…/v1")
    parser.add_argument("--ws-url", help="the WebSocket stage URL, e.g. wss://…/v1")
    parser.add_argument("--token", default=os.environ.get("AI_ASSISTANT_TOKEN") or None)
    parser.add_argument("--user", default="developer", help="dev server only: the token's user")
    parser.add_argument("--state-dir", type=Path, default=DEV_STATE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rest_url is None or args.ws_url is None:
        local = local_dev_server(args.state_dir, args.user)
        if local is None:
            parser.error("no --rest-url/--ws-url given and no dev server running (make dev)")
        rest, ws, token = local
        args.rest_url, args.ws_url = args.rest_url or rest, args.ws_url or ws
        args.token = args.token or token
    return args, AssistantClient(args.rest_url, args.ws_url, args.token)


def local_dev_server(state_dir: Path, user: str) -> tuple[str, str, str] | None:
    """The running dev server's URLs (written at its start) and a token from its key."""
    path = state_dir / "endpoints.json"
    if not path.is_file():
        return None
    endpoints = json.loads(path.read_text())
    from devserver import identity  # the dev server's signing key; only for local use

    key = identity.signing_key(state_dir)
    shape = identity.TokenShape.from_json(endpoints["token_shape"])
    token = identity.mint(key, endpoints["issuer"], user, shape)
    return endpoints["rest_url"], endpoints["ws_url"], token


class Chat:
    def __init__(self, client: AssistantClient, console: Console) -> None:
        self.client = client
        self.console = console
        self.session: dict[str, Any] | None = None
        self.listed: list[dict[str, Any]] = []

    def say(self, text: str, style: str = "") -> None:
        self.console.print(text, style=style, highlight=False, markup=False)

    def error(self, error: ApiError) -> None:
        self.say(f"error: {error}", "bold red")

    def run(self) -> int:
        try:
            health = self.client.health()
        except ApiError as error:
            self.error(error)
            return 1
        self.say(f"connected to {self.client.rest_url} ({health.get('status')})", "dim")
        self.say("type /help for commands", "dim")
        while True:
            try:
                line = self.console.input("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                self.say("")
                return 0
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not self.command(line):
                        return 0
                else:
                    self.send(line)
            except ApiError as error:
                self.error(error)
            except KeyboardInterrupt:
                self.say("\n(interrupted)", "yellow")

    def command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.say(HELP)
        elif name == "/new":
            self.session = self.client.create_session(rest or None)
            self.say(f"new session {self.session['session_id']}", "green")
        elif name == "/sessions":
            self.list_sessions()
        elif name == "/usage":
            self.show_usage()
        elif name == "/resume":
            self.resume(rest)
        elif name == "/rename" and self.session and rest:
            self.session = self.client.rename(self.session["session_id"], rest)
            self.say(f"renamed to {rest!r}", "green")
        elif name == "/delete" and self.session:
            self.client.delete(self.session["session_id"])
            self.say(f"deleted session {self.session['session_id']}", "green")
            self.session = None
        else:
            self.say(f"unknown or incomplete command {line!r}; /help lists them", "yellow")
        return True

    def list_sessions(self) -> None:
        self.listed = self.client.sessions()
        if not self.listed:
            self.say("no sessions yet: type a message to start one")
            return
        table = Table("#", "title", "last activity", "id")
        for number, session in enumerate(self.listed, 1):
            table.add_row(
                str(number),
                session.get("title") or "",
                str(session.get("last_activity", "")),
                session["session_id"],
            )
        self.console.print(table)

    def show_usage(self) -> None:
        usage = self.client.usage()
        if not usage["periods"]:
            self.say("no token limit is configured")
        else:
            table = Table("period", "used", "limit", "remaining", "resets at (UTC)")
            for period in usage["periods"]:
                table.add_row(
                    period["period"],
                    f"{period['used']:,}",
                    f"{period['limit']:,}",
                    f"{period['remaining']:,}",
                    period["resets_at"],
                )
            self.console.print(table)
        slots = usage.get("max_concurrent_answers")
        self.say(
            f"answers generating at once: {f'at most {slots}' if slots else 'no limit'}", "dim"
        )

    def resume(self, which: str) -> None:
        if which.isdigit() and 0 < int(which) <= len(self.listed):
            session_id = self.listed[int(which) - 1]["session_id"]
        else:
            session_id = which
        if not session_id:
            self.say("which session? /sessions lists them", "yellow")
            return
        self.session = self.client.session(session_id)
        self.say(f"resumed {self.session.get('title') or session_id}", "green")
        for message in self.client.messages(session_id):
            style = "cyan" if message["role"] == "user" else ""
            self.say(f"{message['role']}> {message['content']}", style)

    def send(self, content: str) -> None:
        if self.session is None:
            self.session = self.client.create_session(content[:60])
            self.say(f"new session {self.session['session_id']}", "dim")
        turn = self.client.stream(self.session["session_id"], content)
        self.console.print("[bold magenta]assistant>[/] ", end="")
        for text in turn:
            self.console.out(text, end="", highlight=False)
            self.console.file.flush()
        self.say("")
        for number, citation in enumerate(turn.citations, 1):
            excerpt = " ".join(str(citation.get("text", "")).split())[:80]
            source = citation.get("source") or "unknown source"
            self.say(f"  [{citation.get('index', number)}] {source}: {excerpt}", "blue")
        usage = turn.usage
        summary = (
            f"  tokens: {usage.get('input_tokens', '?')} in, {usage.get('output_tokens', '?')} out"
        )
        status = turn.end.get("status")
        if status and status != "complete":  # e.g. incomplete (max_tokens, timeout), failed
            reason = turn.end.get("stop_reason")
            summary += f"; the answer is {status}" + (f" ({reason})" if reason else "")
        self.say(summary, "dim")


def main(argv: list[str] | None = None) -> int:
    _, client = connection_from_args(argv)
    try:
        return Chat(client, Console()).run()
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
