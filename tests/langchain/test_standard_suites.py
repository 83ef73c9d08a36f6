"""LangChain's own standard cache test suites, run against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from langchain_core.caches import BaseCache
from langchain_tests.integration_tests import AsyncCacheTestSuite, SyncCacheTestSuite

from tests.conftest import Backend, backends_with


class TestSyncStandardSuite(SyncCacheTestSuite):
    @pytest.fixture(params=backends_with())
    def cache(self, request: pytest.FixtureRequest) -> Iterator[BaseCache]:
        backend: Backend = request.param
        cache = backend.make()
        yield cache
        cache.clear()


class TestAsyncStandardSuite(AsyncCacheTestSuite):
    @pytest.fixture(params=backends_with())
    async def cache(self, request: pytest.FixtureRequest) -> AsyncIterator[BaseCache]:
        backend: Backend = request.param
        cache = backend.make()
        yield cache
        await cache.aclear()
