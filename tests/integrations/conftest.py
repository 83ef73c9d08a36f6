"""Fixtures shared by the tests of real provider packages over a mocked HTTP transport."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

#: What a langchain-openai model is built with: a test key, a base URL nobody serves,
#: no retries (a test counts requests).
OPENAI_TEST_ARGS: dict[str, Any] = {
    "api_key": "sk-test",
    "base_url": "https://api.openai.test/v1",
    "max_retries": 0,
}

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def mock_http() -> Iterator[Callable[[Handler], dict[str, Any]]]:
    """Build ``http_client`` / ``http_async_client`` arguments that answer with ``handler``.

    No network: ``httpx.MockTransport`` calls the handler. The sync clients are closed
    after the test (the async ones hold no resource once their loop is gone).
    """
    made: list[httpx.Client] = []

    def connect(handler: Handler) -> dict[str, Any]:
        sync = httpx.Client(transport=httpx.MockTransport(handler))
        made.append(sync)
        return {
            "http_client": sync,
            "http_async_client": httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        }

    yield connect
    for client in made:
        client.close()
