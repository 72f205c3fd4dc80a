"""The `fake_llm` pytest fixture: a fresh scripted model server on 127.0.0.1 per test.

Use it from any test (it is registered in tests/conftest.py):

    async def test_x(fake_llm):
        fake_llm.script("my-model", reply="```diff\\n...\\n```")
        ...  # point a policy at fake_llm.base_url with model "my-model"
        assert "secret" not in "".join(fake_llm.bodies())

`fake_llm.requests` lists what the server received (path, model, body as sent, headers, json).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakeserver.server import FakeLLMServer


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()
