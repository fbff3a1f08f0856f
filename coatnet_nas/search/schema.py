"""Is this database empty, an Optuna study storage, or someone else's? Read, never written.

Optuna creates its ~12 tables in whatever database it is given, next to another program's: an
application database with a ``studies`` table got Optuna's tables added and then failed with a
traceback. A storage is used only when it is empty or really is Optuna's: its schema version
table (``version_info``) and the key columns of ``studies``, ``trials`` and ``version_info`` as
Optuna's own table definitions name them; a database holding only Optuna's tables, with those
columns, is one being created by a concurrent worker and is accepted too.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from coatnet_nas.errors import CoatnetError

__all__ = ["check_foreign", "sql_schema", "sqlite_schema"]

_VERSION_TABLE = "version_info"
_CORE = ("studies", "trials", _VERSION_TABLE)


def _optuna_tables() -> dict[str, set[str]]:
    """Optuna's tables and the columns every schema version has had (keys, and names)."""
    from optuna.storages._rdb import models

    tables: dict[str, set[str]] = {}
    for name, table in models.BaseModel.metadata.tables.items():
        keys = {c.name for c in table.columns if c.primary_key or c.foreign_keys}
        tables[name] = keys | ({"study_name"} if name == "studies" else set())
    tables.setdefault("alembic_version", {"version_num"})
    return tables


def check_foreign(schema: dict[str, set[str]], where: str, kind: str = "SQL") -> None:
    """Raise a one-paragraph :class:`CoatnetError` unless ``schema`` is empty or Optuna's."""
    if not schema:
        return
    ours = _optuna_tables()
    wrong = sorted(t for t in schema if t in ours and not ours[t] <= schema[t])
    foreign = sorted(t for t in schema if t not in ours)
    complete = all(t in schema for t in _CORE)
    if not wrong and (complete or not foreign):
        return
    if wrong:
        why = f"its table(s) {', '.join(wrong[:4])} are not Optuna's (other columns)"
    else:
        why = (
            f"it has no Optuna schema version table ({_VERSION_TABLE}) and holds other tables "
            f"({', '.join(foreign[:6])}{', ...' if len(foreign) > 6 else ''})"
        )
    raise CoatnetError(
        f"storage_url: {where}: is another program's {kind} database, not an Optuna study "
        f"storage: {why}. Refusing to add a study to it (it was left unchanged); give a new "
        "or empty database or an existing study storage.",
        param="storage_url",
    )


def sqlite_schema(path: Path) -> dict[str, set[str]]:
    """Tables and columns, through a read-only connection (the file is not modified).

    Never a plain ``open()``: closing any descriptor of a database file drops every POSIX lock
    this process holds on it (see :mod:`~coatnet_nas.search.storage`).
    """
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = [
                str(r[0]) for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            return {
                n: {str(c[1]) for c in con.execute(f"PRAGMA table_info({_quoted(n)})")}
                for n in names
            }
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise CoatnetError(
                f"storage_url: {path}: exists and is not an SQLite database; refusing to touch "
                "it (give a new file or an existing study storage).",
                param="storage_url",
            ) from None
        raise CoatnetError(
            f"storage_url: {path}: cannot read the SQLite database ({exc}); refusing to use it.",
            param="storage_url",
        ) from None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_schema(engine) -> dict[str, set[str]]:
    """Tables and columns of a server database's default schema (reads only)."""
    import sqlalchemy

    inspector = sqlalchemy.inspect(engine)
    return {
        t: {str(c["name"]) for c in inspector.get_columns(t)} for t in inspector.get_table_names()
    }
