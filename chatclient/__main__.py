"""``make chat`` / ``python -m chatclient``: chat with the assistant in a terminal, or ask once.

Without a prompt and on a terminal: the interactive chat (:mod:`chatclient.chat`). With a
prompt argument, or input piped in, or both: one question, the answer on stdout, and an exit
status scripts can use (:mod:`chatclient.oneshot`, :class:`chatclient.status.Exit`).

Without ``--rest-url`` it talks to the dev server (``make dev``), with a token for ``--user``
signed by the dev server's key. With ``--rest-url``, ``--ws-url`` and ``--token`` (or
``AI_ASSISTANT_TOKEN``) it talks to any deployment.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from chatclient.chat import Chat
from chatclient.client import ApiError
from chatclient.connection import NoServer, add_connection_options, checked, resolve
from chatclient.editor import LineEditor, history_file
from chatclient.oneshot import ask, prompt_of
from chatclient.safe import clean
from chatclient.status import Exit, of_error

EPILOG = """exit statuses: 0 complete answer; 1 the service failed; 2 usage (bad option, no
prompt, message invalid or too long, a file refused); 3 token refused or not allowed; 4 quota,
budget, rate limit, busy or throttled; 5 no server, unreachable, wrong URL or too slow;
6 session not found; 7 incomplete answer; 130 interrupted (Ctrl-C)."""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatclient",
        description="Chat with the assistant; with a prompt or piped input, ask once.",
        epilog=EPILOG,
    )
    add_connection_options(parser)
    parser.add_argument("prompt", nargs="*", help="ask this once (piped input is appended)")
    parser.add_argument("--model", help="the model of new sessions (default: the deployment's)")
    parser.add_argument("--kb", metavar="ID", help="ground new sessions on this knowledge base")
    parser.add_argument("--session", metavar="ID", help="one-shot: ask in this session")
    parser.add_argument(
        "--file",
        metavar="PATH",
        action="append",
        default=[],
        help="one-shot: send this file with the question (repeatable)",
    )
    parser.add_argument(
        "--history", type=Path, default=history_file(), help="the line history file"
    )
    parser.add_argument("--no-history", action="store_true", help="keep the history in memory only")
    return parser


def usage_problem(args: argparse.Namespace, interactive: bool, prompt: str) -> str | None:
    """What is wrong with the command line before anything is asked, or None."""
    if not interactive and not prompt.strip():
        return "no prompt: give one as an argument or pipe it in"
    if interactive and args.file:
        return "--file goes with a prompt; in the chat, /attach PATH"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    interactive = not args.prompt and sys.stdin.isatty()
    prompt = "" if interactive else prompt_of(args.prompt, sys.stdin)
    problem = usage_problem(args, interactive, prompt)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return Exit.USAGE
    console = Console(highlight=False, stderr=not interactive)
    try:
        connection = resolve(args)
        client = connection.client()
    except NoServer as error:
        console.print(f"error: {error}", style="bold red", markup=False)
        return Exit.UNAVAILABLE
    try:
        health = checked(connection, client)
        if not interactive:
            return ask(
                client,
                prompt,
                session_id=args.session,
                model_id=args.model,
                knowledge_base_id=args.kb,
                files=args.file,
            )
        editor = LineEditor(None if args.no_history else args.history)
        chat = Chat(client, console, editor, model_id=args.model, knowledge_base_id=args.kb)
        return chat.run(health)
    except NoServer as error:
        console.print(f"error: {error}", style="bold red", markup=False)
        return Exit.UNAVAILABLE
    except ApiError as error:
        console.print(f"error: {clean(error)}", style="bold red", markup=False)
        return of_error(error)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
