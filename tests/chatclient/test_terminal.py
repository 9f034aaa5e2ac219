"""``python -m chatclient`` as people use it: in a pseudo-terminal (pexpect) and in pipes,
against the dev server the tests start, checking what the terminal received and what the
server stored."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from devserver.model import answer
from devserver.server import DevServer
from fakes.bedrock import Pacing
from tests.support.dev_server import DEV_GROUP, Api, wait_for

pytestmark = DEV_GROUP

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"
SLOW = Pacing(first_delta_s=0.2, deltas_per_second=8)  # an answer of ~8 s: time to Ctrl-C


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AI_ASSISTANT_TOKEN"}
    return env | {"TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", "PYTHONUNBUFFERED": "1"}


def _connection(dev: DevServer, user: str) -> list[str]:
    return ["--rest-url", dev.rest_url, "--ws-url", dev.ws_url, "--token", dev.token(user)]


def _expected(question: str, turn: int) -> str:
    """The local model's answer to ``question`` as the ``turn``-th of its session."""
    history = [{"role": "user", "content": [{"text": "earlier"}]}] * (turn - 1)
    return answer({"messages": [*history, {"role": "user", "content": [{"text": question}]}]})


@pytest.fixture
def chat(dev: DevServer) -> Iterator[Callable[[str], Any]]:
    """Opens the chat in a pseudo-terminal as a user; closed with Ctrl-D after the test."""
    children = []

    def open_as(user: str) -> Any:
        child = pexpect.spawn(
            PYTHON,
            ["-m", "chatclient", *_connection(dev, user), "--no-history"],
            cwd=str(ROOT),
            env=_env(),
            encoding="utf-8",
            codec_errors="replace",
            dimensions=(40, 160),
            timeout=30,
        )
        children.append(child)
        child.expect("you> ")
        return child

    yield open_as
    for child in children:
        if child.isalive():
            child.sendcontrol("d")
            child.expect(pexpect.EOF)
        child.close()


def _shown(child: Any) -> str:
    """What the terminal has shown since the last expect, without its styling sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", child.before or "")


def _sessions(api: Api) -> list[dict[str, Any]]:
    return api.http.get("/api/v1/sessions").json()["sessions"]


def test_ctrl_c_cancels_the_answer_and_the_next_turns_show_their_own_answers(
    chat: Callable[[str], Any], dev: DevServer, model: Any
) -> None:
    terminal = chat("chat-carol")
    model.pacing = SLOW
    terminal.send("first question\r")
    terminal.expect("You said")  # the answer is streaming
    model.pacing = Pacing(first_delta_s=0.0, deltas_per_second=400)  # the next ones are quick
    terminal.sendintr()
    terminal.expect(r"\(interrupted")
    terminal.expect("you> ")
    shown = []
    for question in ("second question", "third question"):
        terminal.send(f"{question}\r")
        terminal.expect("tokens:")
        shown.append(" ".join(_shown(terminal).split("assistant>", 1)[-1].split()))
        terminal.expect("you> ")

    carol = Api(dev, "chat-carol")
    [session] = _sessions(carol)
    messages = wait_for(lambda: (m := carol.messages(session["session_id"])) and len(m) == 6 and m)
    first, second, third = messages[1::2]
    assert (first["status"], first["stop_reason"]) == ("incomplete", "interrupted")
    assert first["content"] and _expected("first question", 1).startswith(first["content"])
    assert len(first["content"]) < len(_expected("first question", 1))
    # Each turn showed exactly its own stored answer: nothing of another mixed in, none behind.
    for answered, question, stored in zip(shown, ("second", "third"), (second, third), strict=True):
        assert stored["status"] == "complete"
        assert f"{question} question" in stored["content"]
        assert answered == " ".join(stored["content"].split()), answered


def _paste(child: Any, text: str) -> None:
    """A bracketed paste, written in pieces while the terminal's output is drained, each piece
    whole, as a terminal emulator writes it: a write that waits for the client to read can
    return part-way when this process is interrupted (a profiler pausing it did, and the
    message then missed a piece), and ``send`` drops what it did not write."""
    data = (PASTE_START + text + PASTE_END).encode()
    for start in range(0, len(data), 4096):
        piece = data[start : start + 4096]
        while piece:
            piece = piece[os.write(child.child_fd, piece) :]
        with contextlib.suppress(pexpect.TIMEOUT):
            child.read_nonblocking(1_000_000, timeout=0)


def _code(lines: int) -> str:
    """Indented multi-line text, as code is pasted."""
    return "\n".join(f"{'    ' * (n % 4)}line {n}: value = compute({n}, 'x')" for n in range(lines))


def test_a_multi_line_paste_is_one_message_with_its_indentation(
    chat: Callable[[str], Any], dev: DevServer
) -> None:
    terminal = chat("chat-dave")
    # About 46 KB: many times a terminal line's 4,095 characters, and more than one 32 KB
    # WebSocket frame, so the client sends it in pieces and the gateway puts them together.
    pasted = _code(1100)
    _paste(terminal, pasted)
    terminal.send("\r")
    terminal.expect("tokens:", timeout=60)
    terminal.expect("you> ")
    dave = Api(dev, "chat-dave")
    [session] = _sessions(dave)
    messages = dave.messages(session["session_id"])
    assert [m["role"] for m in messages] == ["user", "assistant"]  # one turn, not 400
    assert messages[0]["content"] == pasted


def test_a_paste_over_the_limit_is_refused_before_it_is_sent(
    chat: Callable[[str], Any], dev: DevServer
) -> None:
    terminal = chat("chat-erin")
    _paste(terminal, _code(5000))  # about 240 KB
    terminal.send("\r")
    terminal.expect("too long to send", timeout=120)
    terminal.expect("you> ")
    # The refusal wraps at the terminal's width, with its numbers styled: read it as words.
    assert "the limit is 50,000" in " ".join(_shown(terminal).split())
    assert _sessions(Api(dev, "chat-erin")) == []  # nothing sent, not even a session created


def test_up_recalls_the_last_message_and_ctrl_c_clears_then_quits(
    chat: Callable[[str], Any], dev: DevServer
) -> None:
    terminal = chat("chat-nina")
    terminal.send("remember me\r")
    terminal.expect("tokens:")
    terminal.expect("you> ")
    terminal.send("\x1b[A")  # Up: the last message, not "^[[A"
    terminal.send("\r")
    terminal.expect("tokens:")
    terminal.expect("you> ")
    terminal.send("half typed")
    terminal.sendintr()  # clears the line ...
    terminal.sendintr()  # ... then, at an empty prompt, quits
    terminal.expect(pexpect.EOF)
    terminal.close()
    assert terminal.exitstatus == 0
    nina = Api(dev, "chat-nina")
    [session] = _sessions(nina)
    questions = [m["content"] for m in nina.messages(session["session_id"]) if m["role"] == "user"]
    assert questions == ["remember me", "remember me"]


HOSTILE = "BEFORE\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b]0;pwned\x07\x1b[5;41mred\x9b2JAFTER"
FORBIDDEN = ("\x1b]52", "\x1b]0;", "\x1b]2;", "pwned", "\x1b[5;41m", "Y3VybCBldmlsIHwgc2g=", "\x9b")


def test_hostile_strings_do_not_reach_the_terminal(
    chat: Callable[[str], Any], dev: DevServer, model: Any
) -> None:
    terminal = chat("chat-trudy")
    trudy = Api(dev, "chat-trudy")
    trudy.create_session(title=f"title {HOSTILE} [bold]markup[/bold]")
    model.reply = lambda body: HOSTILE
    received = []
    terminal.logfile_read = Recorder(received)
    terminal.send("/sessions\r")
    terminal.expect("last activity")
    terminal.expect("you> ")
    terminal.send("/resume 1\r")
    terminal.expect("resumed")
    terminal.expect("you> ")
    terminal.send("hello\r")
    terminal.expect("tokens:")
    terminal.expect("you> ")
    terminal.send("/resume not-a-session-\x1b]2;typed\x07\r")  # echoed in the error
    terminal.expect("of yours")
    terminal.expect("you> ")
    everything = "".join(received)
    assert "BEFOREredAFTER" in everything  # the answer was shown, cleaned
    assert "[bold]markup[/bold]" in everything  # markup shown as typed, not applied
    for sequence in FORBIDDEN:
        assert sequence not in everything, sequence


class Recorder:
    """A pexpect log that keeps everything the terminal received."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, data: str) -> None:
        self.into.append(data)

    def flush(self) -> None:
        pass


# ---- one-shot and pipes --------------------------------------------------------------------


def _run(args: list[str], stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "chatclient", *args],
        cwd=ROOT,
        env=_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_one_shot_prints_the_answer_on_stdout_and_exits_0(dev: DevServer) -> None:
    result = _run([*_connection(dev, "chat-grace"), "what", "is", "this?"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == _expected("what is this?", 1) + "\n"


def test_piped_input_follows_the_prompt(dev: DevServer) -> None:
    diff = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-    old()\n+    new()\n"
    result = _run([*_connection(dev, "chat-heidi"), "review this"], stdin=diff)
    assert result.returncode == 0, result.stderr
    heidi = Api(dev, "chat-heidi")
    [session] = _sessions(heidi)
    assert heidi.messages(session["session_id"])[0]["content"] == f"review this\n\n{diff}"
    assert result.stdout.startswith('You said: "review this --- a/x.py')


def test_piped_input_alone_is_the_prompt(dev: DevServer) -> None:
    result = _run(_connection(dev, "chat-ivan"), stdin="just the pipe\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == _expected("just the pipe", 1) + "\n"


def test_an_incomplete_answer_exits_7(dev: DevServer, model: Any) -> None:
    saved = model.stop_reason
    model.stop_reason = "max_tokens"
    try:
        result = _run([*_connection(dev, "chat-judy"), "hello"])
    finally:
        model.stop_reason = saved
    assert result.returncode == 7, result.stderr
    assert "the answer is incomplete (max_tokens)" in result.stderr
    assert result.stdout.startswith("You said")


@pytest.mark.parametrize(
    ("args", "status", "said"),
    [
        (["--token", "not-a-token", "hi"], 3, "the token was refused"),
        (["--session", "no-such-session", "hi"], 6, "no such session"),
        ([], 2, "no prompt: give one as an argument or pipe it in"),
    ],
)
def test_failures_exit_with_their_documented_status(
    dev: DevServer, args: list[str], status: int, said: str
) -> None:
    base = ["--rest-url", dev.rest_url, "--ws-url", dev.ws_url]
    token = [] if "--token" in args else ["--token", dev.token("chat-mallory")]
    result = _run([*base, *token, *args])
    assert result.returncode == status, result.stdout + result.stderr
    assert said in result.stderr
    assert result.stdout == ""


def test_the_dev_server_is_found_through_its_endpoints_file(dev: DevServer) -> None:
    result = _run(["--state-dir", str(dev.settings.state_dir), "--user", "chat-oscar", "hi"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == _expected("hi", 1) + "\n"


def test_without_a_server_it_says_how_to_start_one(tmp_path: Path) -> None:
    for module in ("chatclient", "chatclient.smoke"):
        result = subprocess.run(
            [
                PYTHON,
                "-m",
                module,
                "--state-dir",
                str(tmp_path),
                *(["hi"] if module == "chatclient" else []),
            ],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        said = " ".join(result.stderr.split())
        assert "no dev server is running" in said, said
        assert "make dev" in said
        assert "or pass REST_URL/WS_URL/TOKEN" in said
        assert "usage:" not in said


def test_a_rest_url_without_the_stage_is_told_as_such(dev: DevServer) -> None:
    without_stage = dev.rest_url.rsplit("/", 1)[0]
    result = _run(["--rest-url", without_stage, "--ws-url", dev.ws_url, "--token", "t", "hi"])
    assert result.returncode == 5, result.stderr
    assert "check the stage in REST_URL" in result.stderr
    assert "Missing Authentication Token" not in result.stderr.split(":")[0]


def test_the_module_help_documents_the_exit_statuses() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chatclient", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "7 incomplete answer" in " ".join(result.stdout.split())


def test_make_chat_passes_args_through_as_a_one_shot_prompt(dev: DevServer) -> None:
    """``make chat ARGS="…"``: the recipe ``make`` would run (``-n``: printed, not run, and
    ``-o setup``: no install), then that command, as the shell would run it."""
    env = {k: v for k, v in _env().items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    recipe = subprocess.run(
        ["make", "-n", "--no-print-directory", "-o", "setup", "chat", f"REST_URL={dev.rest_url}",
         f"WS_URL={dev.ws_url}", f"TOKEN={dev.token('chat-peggy')}", "ARGS=hello from make"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert recipe.endswith("hello from make"), recipe
    result = subprocess.run(  # noqa: S602 - the recipe, run by the shell as make would
        recipe, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == _expected("hello from make", 1) + "\n"
