import asyncio


async def _ping() -> bool:
    return True


def ping_sync() -> bool:
    return asyncio.run(_ping())
