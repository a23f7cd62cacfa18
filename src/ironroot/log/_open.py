"""Opening a log store: the one place that turns a directory, a URL or ``[log]`` into a store.

:func:`open_store` takes a data directory (its log: ``<dir>/log.sqlite3``, or the PostgreSQL
store its ``ironroot.toml`` names) or a PostgreSQL URL (``postgresql://`` or ``postgres://``).
:class:`StoreConfig` is the ``store``, ``dsn``, ``schema``, ``pool_size`` and
``store_timeout`` keys of the ``[log]`` table of ``ironroot.toml``, checked. The service,
``ironroot log verify`` and ``ironroot log migrate`` all open their store through here.

The DSN may also come from the environment variable ``IRONROOT_PG_DSN`` (used when ``[log]``
has no ``dsn``), so a password need not be written in the configuration file. psycopg is
imported only when a PostgreSQL store is opened.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from ironroot._fileio import make_dirs
from ironroot.errors import ConfigError, StorageError
from ironroot.log import layout
from ironroot.log._sqlite import SqliteLogStore
from ironroot.log._store import AuditableStore

__all__ = [
    "DSN_ENV",
    "STORE_KEYS",
    "SchemaStatus",
    "StoreConfig",
    "check_schema_name",
    "open_store",
]

DSN_ENV: Final = "IRONROOT_PG_DSN"
STORE_KEYS: Final = frozenset({"store", "dsn", "schema", "pool_size", "store_timeout"})
"""The keys of ``[log]`` that :class:`StoreConfig` reads."""
_URL_SCHEMES: Final = ("postgresql://", "postgres://")
_log = logging.getLogger("ironroot.log")


_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(schema: str | None) -> str | None:
    """A PostgreSQL schema name as the store accepts it: plain lowercase, at most 63."""
    if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"the PostgreSQL schema {schema!r} must be lowercase letters, digits and '_' "
            "(at most 63, not starting with a digit)"
        )
    return schema


def is_store_url(where: str | os.PathLike[str]) -> bool:
    return isinstance(where, str) and where.startswith(_URL_SCHEMES)


def open_store(
    where: str | os.PathLike[str],
    *,
    schema: str | None = None,
    read_only: bool = False,
    create: bool = True,
    migrate: bool = False,
    pool_size: int = 4,
    timeout: float = 5.0,
) -> AuditableStore:
    """Open the log store at ``where``: a data directory, or a PostgreSQL URL.

    A data directory's log is the one its ``ironroot.toml`` configures (``[log] store``):
    SQLite in ``<dir>/log.sqlite3`` by default (and without a configuration file).
    ``read_only`` opens an existing log for checking only (PostgreSQL: one snapshot for the
    whole session). ``create`` lets an empty PostgreSQL schema be created; ``migrate`` lets
    an older one be brought up to date. ``schema``, ``pool_size`` and ``timeout`` apply to
    PostgreSQL only.
    """
    if is_store_url(where):
        assert isinstance(where, str)
        from ironroot.log._postgres import PostgresLogStore

        return PostgresLogStore(
            where,
            schema=schema,
            read_only=read_only,
            pool_size=pool_size,
            timeout=timeout,
            create=create,
            migrate=migrate,
        )
    if isinstance(where, str) and "://" in where:
        raise ConfigError("a log store is a data directory or a postgresql:// URL")
    data_dir = Path(where)
    if schema is not None:
        raise ConfigError("a schema is for a PostgreSQL store, not a data directory")
    config = StoreConfig.of_data_dir(data_dir)
    if config.kind != "sqlite":
        return config.open(data_dir, read_only=read_only, create=create, migrate=migrate)
    return _open_sqlite(data_dir, read_only=read_only)


def _open_sqlite(data_dir: Path, *, read_only: bool) -> SqliteLogStore:
    path = layout.log_db_path(data_dir)
    if not read_only:
        try:
            make_dirs(data_dir)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {data_dir}") from exc
    return SqliteLogStore(path, read_only=read_only)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """A store's schema version against this code's (``ironroot log migrate``)."""

    where: str
    version: int
    """The stored version after the call (0: no log there)."""
    latest: int
    """The version this code reads and writes."""
    before: int | None = None
    """The stored version before a migration (``None`` when only checked)."""

    @property
    def current(self) -> bool:
        return self.version == self.latest

    def to_json(self) -> dict[str, object]:
        return {
            "store": self.where,
            "version": self.version,
            "latest": self.latest,
            "before": self.before,
            "current": self.current,
        }


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where a data directory's log lives (``[log]`` in ``ironroot.toml``)."""

    kind: Literal["sqlite", "postgresql"] = "sqlite"
    dsn: str | None = field(default=None, repr=False)  # may hold a password
    schema: str | None = None
    pool_size: int = 4
    timeout: float = 5.0
    dsn_from_env: bool = False

    @property
    def has_password(self) -> bool:
        """The configuration file's DSN holds a password (keep the file private)."""
        if self.dsn is None or self.dsn_from_env:
            return False
        parts = urlsplit(self.dsn)
        return bool(parts.password) or "password=" in parts.query

    @classmethod
    def from_table(
        cls, table: Mapping[str, object], *, environ: Mapping[str, str] | None = None
    ) -> StoreConfig:
        """Check the store keys of a ``[log]`` table (other keys are left to the caller)."""
        env = os.environ if environ is None else environ
        kind = table.get("store", "sqlite")
        if kind not in ("sqlite", "postgresql"):
            raise ConfigError('log.store must be "sqlite" or "postgresql"')
        dsn = table.get("dsn")
        schema = table.get("schema")
        pool_size = table.get("pool_size", 4)
        timeout = table.get("store_timeout", 5.0)
        if isinstance(timeout, int) and not isinstance(timeout, bool):
            timeout = float(timeout)
        if kind == "sqlite":
            for key in ("dsn", "schema", "pool_size", "store_timeout"):
                if key in table:
                    raise ConfigError(f'log.{key} needs log.store = "postgresql"')
            if env.get(DSN_ENV):  # set for this service, yet unused: say so (never its value)
                _log.warning(
                    '%s is set but [log] has no store = "postgresql": the log is SQLite in the '
                    "data directory",
                    DSN_ENV,
                )
            return cls()
        from_env = dsn is None
        if dsn is None:
            dsn = env.get(DSN_ENV) or None
            if dsn is None:
                raise ConfigError(f'log.store = "postgresql" needs log.dsn or {DSN_ENV}')
        if not isinstance(dsn, str) or not is_store_url(dsn):
            raise ConfigError("log.dsn must be a postgresql:// URL")
        if schema is not None and not isinstance(schema, str):
            raise ConfigError("log.schema must be a string")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int):
            raise ConfigError("log.pool_size must be an integer")
        if not 1 <= pool_size <= 100:
            raise ConfigError("log.pool_size must be between 1 and 100")
        if not isinstance(timeout, float) or not 0.1 <= timeout <= 600:
            raise ConfigError("log.store_timeout must be between 0.1 and 600 seconds")
        check_schema_name(schema)
        return cls("postgresql", dsn, schema, pool_size, timeout, from_env)

    @classmethod
    def of_data_dir(cls, data_dir: Path) -> StoreConfig:
        """The store configured in ``<data_dir>/ironroot.toml`` (SQLite without one)."""
        if not layout.config_path(data_dir).exists():
            return cls()
        return cls.from_table(layout.read_log_table(data_dir))

    def describe(self, data_dir: Path) -> str:
        """Where the log is, for messages (never the password)."""
        if self.kind == "sqlite":
            return f"SQLite {layout.log_db_path(data_dir)}"
        from ironroot.log._postgres import describe_dsn

        assert self.dsn is not None
        schema = f" schema {self.schema}" if self.schema else ""
        return f"PostgreSQL {describe_dsn(self.dsn)}{schema}"

    def open(
        self,
        data_dir: Path,
        *,
        read_only: bool = False,
        create: bool = True,
        migrate: bool = False,
    ) -> AuditableStore:
        """:func:`open_store` on this configuration (SQLite: under ``data_dir``)."""
        if self.kind == "sqlite":
            return _open_sqlite(data_dir, read_only=read_only)
        assert self.dsn is not None
        return open_store(
            self.dsn,
            schema=self.schema,
            read_only=read_only,
            create=create,
            migrate=migrate,
            pool_size=self.pool_size,
            timeout=self.timeout,
        )

    def migrate(self, data_dir: Path, *, check: bool = False) -> SchemaStatus:
        """Create the store or bring its schema up to date (``check``: only report)."""
        where = self.describe(data_dir)
        if self.kind == "sqlite":
            from ironroot.log._sqlite import SCHEMA_VERSION as latest
            from ironroot.log._sqlite import stored_version

            exists = layout.log_db_path(data_dir).exists()
            if check and not exists:
                return SchemaStatus(where, 0, latest)
            before = stored_version(layout.log_db_path(data_dir)) if exists else 0
            # Opening checks the version (another one: StorageError, code store-schema); a
            # read-write open migrates an older one.
            self.open(data_dir, read_only=check).close()
            return SchemaStatus(where, latest, latest, None if check else before)
        from ironroot.log._postgres import SCHEMA_VERSION as pg_latest
        from ironroot.log._postgres import PostgresLogStore

        assert self.dsn is not None
        store = PostgresLogStore(
            self.dsn, schema=self.schema, timeout=self.timeout, pool_size=1, check_schema=False
        )
        try:
            if check:
                return SchemaStatus(where, store.schema_version, pg_latest)
            before, after = store.migrate()
            return SchemaStatus(where, after, pg_latest, before)
        finally:
            store.close()
