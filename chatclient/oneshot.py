"""One question, one answer, for scripts: ``python -m chatclient "prompt"`` or piped input.

The answer goes to stdout as plain text (cleaned of control sequences, like everything the
client prints), every diagnostic to stderr, and the exit status (:class:`chatclient.status.Exit`)
says how it went: 0 only for a complete answer.
"""

from __future__ import annotations

import sys
from typing import TextIO

from chatclient import attachments
from chatclient.chat import ctrl_c_interrupts
from chatclient.client import ApiError, AssistantClient, check
from chatclient.safe import clean
from chatclient.status import Exit, of_error


def prompt_of(words: list[str], stdin: TextIO) -> str:
    """The prompt: the arguments, then what is piped in (``git diff | … "review this"``)."""
    parts = [" ".join(words)] if words else []
    if not stdin.isatty():
        piped = stdin.read()
        if piped.strip():
            parts.append(piped)
    return "\n\n".join(parts)


def ask(
    client: AssistantClient,
    prompt: str,
    *,
    session_id: str | None = None,
    model_id: str | None = None,
    knowledge_base_id: str | None = None,
    files: list[str] | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> Exit:
    """Send ``prompt`` (in session ``session_id``, else a new one) with ``files`` uploaded
    for it, and print the answer."""
    try:
        check(prompt)  # before a session is created for it
        local = [attachments.read(path) for path in files or []]
        attachments.check_count(file.format.kind for file in local)
        if session_id is None:
            title = " ".join(prompt.split())[:60]
            session = client.create_session(
                title, model_id=model_id, knowledge_base_id=knowledge_base_id
            )
            session_id = session["session_id"]
        uploaded = [attachments.upload(client, session_id, file) for file in local]
        turn = client.stream(
            session_id, prompt, attachments=[file.attachment_id for file in uploaded]
        )
        try:
            with ctrl_c_interrupts(client):
                for text in turn:
                    out.write(clean(text))
                    out.flush()
        except KeyboardInterrupt:
            client.abandon(turn)
            out.write("\n")
            print("interrupted: the answer was cancelled", file=err)
            return Exit.INTERRUPTED
    except ApiError as error:
        print(f"error: {clean(error)}", file=err)
        return of_error(error)
    out.write("\n")
    for note in attachments.unavailable_notes(turn.unavailable):
        print(note, file=err)
    status, reason = turn.end.get("status"), turn.end.get("stop_reason")
    if status != "complete":
        print(f"the answer is {clean(status)} ({clean(reason)})", file=err)
        return Exit.INCOMPLETE
    return Exit.OK
