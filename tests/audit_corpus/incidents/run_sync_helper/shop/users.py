from .utils.aio import run_sync


async def fetch_user(user_id: int) -> dict:
    return {"id": user_id}


def lookup_user(user_id: int) -> dict:
    return run_sync(fetch_user(user_id))
