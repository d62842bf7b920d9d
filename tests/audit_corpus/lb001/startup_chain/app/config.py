from . import db


def load() -> dict:
    db.ping_sync()
    return {}
