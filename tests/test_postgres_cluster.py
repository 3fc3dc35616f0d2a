"""The PostgreSQL server the tests get is real: fresh databases per test, data survives a restart."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import postgres_cluster as cluster_module
import pytest
from postgres_cluster import PostgresCluster
from sqlalchemy import Connection, create_engine, inspect, text

seen_uris: list[str] = []


@contextmanager
def connect(uri: str) -> Iterator[Connection]:
    """A SQLAlchemy connection to ``uri`` through psycopg 3; its engine is disposed afterwards."""
    engine = create_engine(uri.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def test_server_is_postgresql(postgres_uri: str) -> None:
    with connect(postgres_uri) as connection:
        assert connection.execute(text("select version()")).scalar_one().startswith("PostgreSQL")


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_a_new_empty_database(postgres_uri: str, postgres_cluster: PostgresCluster, attempt: int) -> None:
    assert postgres_uri not in seen_uris and postgres_uri != postgres_cluster.uri
    with connect(postgres_uri) as connection:
        assert inspect(connection).get_table_names() == []
        connection.execute(text("create table leftover (x int)"))
        connection.commit()
    with connect(postgres_cluster.uri) as connection:
        test_databases = connection.execute(text(r"select datname from pg_database where datname like 't\_%'")).scalars().all()
    assert test_databases == [postgres_uri.rsplit("/", 1)[1]]  # the databases of earlier tests were dropped
    seen_uris.append(postgres_uri)


def test_restart_keeps_data(postgres_uri: str, postgres_cluster: PostgresCluster) -> None:
    with connect(postgres_uri) as connection:
        connection.execute(text("create table kept (x int)"))
        connection.execute(text("insert into kept values (1), (2)"))
        connection.commit()
        started = connection.execute(text("select pg_postmaster_start_time()")).scalar_one()
    postgres_cluster.restart()
    with connect(postgres_uri) as connection:
        assert connection.execute(text("select pg_postmaster_start_time()")).scalar_one() > started
        assert connection.execute(text("select x from kept order by x")).scalars().all() == [1, 2]


def test_missing_binaries_name_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cluster_module, "DEBIAN_VERSIONS", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="install Debian's 'postgresql' package"):
        PostgresCluster()
