"""Settings load once; the database password is a secret."""

from dataclasses import dataclass

from .secrets import read_secret


@dataclass
class Settings:
    dsn: str


def load() -> Settings:
    password = read_secret("db-password")
    return Settings(dsn=f"postgresql://app:{password}@db/app")
