"""``make dev-token`` (``python -m devserver.token``): a token's lifetime and scopes on demand,
and a clear refusal of values that are neither."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from devserver.server import DevServer
from devserver.token import main
from tests.support.dev_server import DEV_GROUP

pytestmark = DEV_GROUP


def _token(
    dev: DevServer, stacks_dir: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> str:
    assert dev.issuer is not None
    port = str(urlsplit(dev.issuer.url).port)
    argv = ["alice", "--stacks-dir", str(stacks_dir), "--oidc-port", port]
    argv += ["--state-dir", str(dev.settings.state_dir), *options]
    assert main(argv) == 0
    return capsys.readouterr().out.strip()


def _accepted(dev: DevServer, token: str) -> bool:
    response = httpx.get(
        f"{dev.rest_url}/api/v1/sessions", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code == 200


def test_expires_sets_the_lifetime(
    dev: DevServer, stacks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = _token(dev, stacks_dir, capsys, "--expires", "15m")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert _accepted(dev, token)


def test_scopes_are_exactly_the_ones_given(
    dev: DevServer, stacks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = _token(dev, stacks_dir, capsys, "--scopes", "read, chat")
    assert jwt.decode(token, options={"verify_signature": False})["scope"] == "read chat"
    assert _accepted(dev, token)  # the dev stack asks for no scope


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--expires", "soon", "EXPIRES must be a lifetime such as 30s, 15m, 12h or 7d"),
        ("--expires", "0m", "above zero"),
        ("--expires", "31d", "at most 30d"),
        ("--scopes", 'read "chat"', "SCOPES must list scopes"),
        ("--scopes", " , ", "SCOPES must list scopes"),
    ],
)
def test_a_bad_value_is_refused_saying_what_is_expected(
    stacks_dir: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["alice", "--stacks-dir", str(stacks_dir), option, value])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
