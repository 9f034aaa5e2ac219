"""A session-bound turn of the OpenAI-compatible API names its untitled session as a REST turn
does (beside the answer, through the same chat service), streamed or not; the response itself
stays OpenAI's shape."""

from __future__ import annotations

import pytest

from fakes.bedrock import BedrockFake
from functions.contract import OPENAI_SESSION_HEADER
from tests.functions.chat.test_titles import scripted, stored_title, title_calls
from tests.functions.helpers import Rest
from tests.functions.openai_api.conftest import Api, ask


@pytest.mark.usefixtures("titles_on")
@pytest.mark.parametrize("stream", [False, True], ids=["body", "streamed"])
def test_a_session_bound_turn_names_its_untitled_session(
    api: Api, rest: Rest, bedrock: BedrockFake, stream: bool
) -> None:
    bedrock.reply = scripted("Capital of France")
    session_id = rest.create_session(knowledge_base_id=None)["session_id"]
    response = api.post(
        ask("Capital of France?", stream=stream), headers={OPENAI_SESSION_HEADER: session_id}
    )
    assert response.status_code == 200, response.text
    assert "title" not in (response.text if stream else response.json())
    assert stored_title(session_id) == "Capital of France"
    assert len(title_calls(bedrock)) == 1


@pytest.mark.usefixtures("titles_on")
def test_a_stateless_turn_names_nothing(api: Api, bedrock: BedrockFake) -> None:
    bedrock.reply = scripted("Capital of France")
    assert api.post(ask("Capital of France?")).status_code == 200
    assert title_calls(bedrock) == []
