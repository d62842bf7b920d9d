"""LB003 in a suite whose test files are named by python_files (pytest.ini), not
test_*.py: pytest collects this file, so the audit reads it as tests too."""

import pytest
import redis.asyncio

client = redis.asyncio.Redis()  # expect: LB003


@pytest.mark.asyncio
async def test_set() -> None:
    await client.set("k", "v")


@pytest.mark.asyncio
async def test_get() -> None:
    await client.get("k")
