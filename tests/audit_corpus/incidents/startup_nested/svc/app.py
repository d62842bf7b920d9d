"""The web app: settings are loaded in the lifespan hook, which is a coroutine."""

from contextlib import asynccontextmanager

from . import settings


@asynccontextmanager
async def lifespan(app):
    app.state.settings = settings.load()  # expect: LB001
    yield


def manage_py_check() -> None:
    settings.load()  # ok: LB001 (a sync command: no loop runs)
