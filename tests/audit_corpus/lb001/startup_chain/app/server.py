from app.config import load


async def startup() -> None:
    load()  # expect: LB001


def cli() -> None:
    load()  # ok: LB001
