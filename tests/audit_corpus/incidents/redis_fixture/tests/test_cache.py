async def test_set(cache) -> None:
    await cache.set("k", "v")


async def test_get(cache) -> None:
    assert await cache.get("missing") is None
