"""The store's tables and how a database is opened (SQLAlchemy Core).

One database may hold many datasets (an image folder each, by name); every table is keyed by
``dataset_id``. Tables:

==============  ====================================================================
``datasets``    name, the next annotation id (a counter, so ids are never reused),
                the row a write transaction locks first
``images``      key (relative POSIX path), width, height
``categories``  name → stable id
``annotations`` id, image, label, category id, RLE (size + counts), bbox, area, score,
                predicted IoU, prompt, source, created, author, review state, data
``done``        the images marked done
``reviewed``    the images marked reviewed
``settings``    JSON values by (scope, key): ``meta`` (run metadata), ``session``
                (the image worked on last), ``store`` (migration record)
``requests``    client request ids of writes and their results (idempotent retries)
``history``     each change of an image's annotations, undoable: the rows before and
                after it, the categories and image rows it created, whether it is undone
==============  ====================================================================

Writers are serialised per dataset: SQLite takes its write lock at ``BEGIN IMMEDIATE`` (the
database in WAL mode, so that readers never wait, with a 30 s busy timeout); PostgreSQL locks
the dataset's row (``SELECT ... FOR UPDATE``) as a write's first statement. Reads see the last
committed state of every writer, in this process or another.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    make_url,
    text,
    update,
)

SCHEMA_VERSION = 3
"""1: the JSON store (``*.annotations.json``); 2: these tables; 3: annotations gain ``state``
and ``data``, and the ``reviewed`` table (added to a version 2 database when it is opened, see
:func:`create_tables`)."""

BUSY_TIMEOUT_MS = 30_000
"""How long an SQLite writer waits for another's transaction before giving up."""

CACHE_KIB = 65_536
"""SQLite's page cache per connection, KiB (its default is 2 MiB): the indexes of a store of
100k annotations stay in memory between writes (used as pages are read, not set aside)."""

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("next_annotation_id", BigInteger, nullable=False),
    Column("schema_version", Integer, nullable=False),
)


def _dataset_fk(primary_key: bool = True) -> Column:
    return Column("dataset_id", Integer, ForeignKey("datasets.id"), primary_key=primary_key)


images = Table(
    "images",
    metadata,
    _dataset_fk(),
    Column("key", Text, primary_key=True),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
)

categories = Table(
    "categories",
    metadata,
    _dataset_fk(),
    Column("name", String(200), primary_key=True),
    Column("category_id", BigInteger, nullable=False),
    UniqueConstraint("dataset_id", "category_id", name="uq_category_id"),
)

annotations = Table(
    "annotations",
    metadata,
    _dataset_fk(),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("image", Text, nullable=False),
    Column("label", String(200), nullable=False),
    Column("category_id", BigInteger, nullable=False),
    Column("height", Integer, nullable=False),
    Column("width", Integer, nullable=False),
    Column("counts", Text, nullable=False),
    Column("bbox", JSON, nullable=False),
    Column("area", BigInteger, nullable=False),
    Column("score", Double, nullable=True),
    Column("predicted_iou", Double, nullable=True),
    Column("prompt", JSON, nullable=False),
    Column("source", String(20), nullable=False),
    Column("created", Double, nullable=False),
    Column("author", String(200), nullable=False),
    Column("state", String(10), nullable=False, server_default="accepted"),
    Column("data", JSON, nullable=True),
    Index("ix_annotations_image", "dataset_id", "image", "id"),  # an image's, in order: no scan
)

done = Table("done", metadata, _dataset_fk(), Column("key", Text, primary_key=True))

reviewed = Table("reviewed", metadata, _dataset_fk(), Column("key", Text, primary_key=True))

settings = Table(
    "settings",
    metadata,
    _dataset_fk(),
    Column("scope", String(20), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=True),
)

requests = Table(
    "requests",
    metadata,
    _dataset_fk(),
    Column("request_id", String(100), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("result", JSON, nullable=False),
    Column("created", Double, nullable=False),
    Column("replayed", Boolean, nullable=False, default=False),
)


history = Table(
    "history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the order of changes
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("image", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("before", JSON, nullable=False),  # the rows it removed or changed, as they were
    Column("after", JSON, nullable=False),  # the rows it added or changed, as they became
    Column("created_rows", JSON, nullable=False),  # {"categories": [[name, id]], "image": [w, h] | null}
    Column("undone", Boolean, nullable=False, default=False),
    Column("created", Double, nullable=False),
    Column("author", String(200), nullable=False),
    Index("ix_history_image", "dataset_id", "image", "id"),
)


def database_url(target: str | Path) -> str:
    """A SQLAlchemy URL for ``target``: a URL (``postgresql+psycopg://user@host/db``,
    ``sqlite:///file.db``) as it is, a file path as an SQLite URL (its folder is created)."""
    if isinstance(target, str) and "://" in target:
        return target
    path = Path(target).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redacted(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def open_engine(url: str) -> Engine:
    """A SQLAlchemy engine on ``url`` (see :func:`database_url`), set up as the store needs.

    SQLite: WAL journal, :data:`BUSY_TIMEOUT_MS`, foreign keys on, and transactions begun by
    the store itself, ``BEGIN IMMEDIATE`` for a write (execution option ``store_write``) and a
    deferred ``BEGIN`` for a read. PostgreSQL: ``psycopg`` (3) unless the URL names a driver.

    Raises:
        sqlalchemy.exc.ArgumentError: a malformed URL. ModuleNotFoundError: its driver is not
            installed.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # the store emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("store_write") else "BEGIN")

    return engine


def create_tables(engine: Engine) -> None:
    """Create the tables that do not exist yet, once even when several processes start at
    once (SQLite: under the write lock; PostgreSQL: under a transaction-level advisory lock)."""
    with engine.execution_options(store_write=True).begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(727271)"))
        metadata.create_all(conn)
        _add_review_columns(conn)


AUTOMATIC_SOURCES = ("patches", "samcp", "possam", "imported")
"""The sources whose annotations a version 2 database's upgrade marks ``predicted``."""


def _add_review_columns(conn) -> None:
    """Upgrade a version 2 database in place: ``annotations.state`` (``predicted`` for the
    everything mode's and imported annotations, ``accepted`` for the others, which people
    made) and ``annotations.data``. Nothing else changes; run under the write lock."""
    have = {c["name"] for c in inspect(conn).get_columns("annotations")}
    if "state" not in have:
        conn.execute(text("ALTER TABLE annotations ADD COLUMN state VARCHAR(10) NOT NULL DEFAULT 'accepted'"))
        marked = ", ".join(f"'{s}'" for s in AUTOMATIC_SOURCES)
        conn.execute(text(f"UPDATE annotations SET state = 'predicted' WHERE source IN ({marked})"))
    if "data" not in have:
        conn.execute(text("ALTER TABLE annotations ADD COLUMN data JSON"))
    conn.execute(
        update(datasets).where(datasets.c.schema_version < SCHEMA_VERSION).values(schema_version=SCHEMA_VERSION)
    )
