"""Money from the ``prices`` extra (genai-prices' offline data), on every backend.

Not collected without the extra (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from tests.chat_models import CountingChatModel
from tests.conftest import Factory

# OpenAI's published gpt-4o-mini price, per million tokens: $0.15 in, $0.60 out.
GPT_4O_MINI_CALL = (100 * 0.15 + 20 * 0.60) / 1e6  # CountingChatModel: 100 in, 20 out


def test_genai_prices_give_money_for_a_known_model(make_cache: Factory) -> None:
    cache = make_cache(prices="genai-prices")
    model = CountingChatModel(cache=cache, delay=0.0, model_name="gpt-4o-mini")
    for _ in range(3):
        model.invoke("q")
    assert model.calls == 1
    stats = cache.stats()
    assert stats.saved.calls == 2
    assert stats.saved.money == pytest.approx(2 * GPT_4O_MINI_CALL)
    assert stats.by_model["gpt-4o-mini"].money == pytest.approx(2 * GPT_4O_MINI_CALL)


def test_genai_prices_leave_an_unknown_model_unpriced(make_cache: Factory) -> None:
    cache = make_cache(prices="genai-prices")
    model = CountingChatModel(cache=cache, delay=0.0, model_name="no-such-model-anywhere")
    model.invoke("q")
    model.invoke("q")
    saved = cache.stats().saved
    assert saved.calls == 1
    assert saved.money is None
