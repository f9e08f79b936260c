"""Data files under a table's location that no snapshot references: what a killed ``commit_day`` leaves behind,
and the files of replaced days once the snapshots that still reference them are expired.

The janitor's order: ``expire_snapshots`` (forget snapshots older than the time travel you want to keep), then
``remove_orphans`` (delete the data files no remaining snapshot references).

Why ``older_than``: a commit in flight has written its files but not committed them yet; only files older than any
commit could take (hours, not seconds) are orphans for sure. The listing is taken before the references are read,
so a file committed in between is seen as referenced. Files of snapshots that were expired are not referenced any
more either, so they are listed too (Iceberg's own orphan removal works the same way).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyarrow.fs import FileSelector, FileType
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from app.lake.tables import DEFAULT_ATTEMPTS, backoff
from app.platform import clock


def _data_files_on_storage(table: Table) -> list[tuple[str, datetime]]:
    """(location, modification time) of every file under ``<table location>/data``, spelt as the table spells
    its data files (the table's location plus the path below it)."""
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"orphan listing needs the PyArrow FileIO, not {type(io).__name__}")
    root = f"{table.location().rstrip('/')}/data"
    scheme, netloc, path = PyArrowFileIO.parse_location(root, io.properties)
    fs = io.fs_by_scheme(scheme, netloc)
    infos = fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True))
    found = []
    for info in infos:
        if info.type != FileType.File or not info.path.startswith(path):
            continue
        mtime = info.mtime if info.mtime is not None else clock.system_utc_now()
        found.append((root + info.path[len(path.rstrip("/")) :], mtime.astimezone(UTC)))
    return found


def referenced_files(table: Table) -> set[str]:
    """Every data (and delete) file any snapshot of the table references."""
    table.refresh()
    seen_manifests: set[str] = set()
    paths: set[str] = set()
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                paths.add(entry.data_file.file_path)
    return paths


def orphan_files(table: Table, older_than: timedelta) -> list[str]:
    """Data files under the table's location, last modified more than ``older_than`` ago, that no snapshot
    references; sorted."""
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    cutoff = clock.system_utc_now() - older_than
    on_storage = [(path, mtime) for path, mtime in _data_files_on_storage(table) if mtime <= cutoff]
    referenced = referenced_files(table)
    return sorted(path for path, _ in on_storage if path not in referenced)


def remove_orphans(table: Table, older_than: timedelta) -> list[str]:
    """Delete ``orphan_files(table, older_than)``; returns what was deleted (for the janitor's log)."""
    removed = []
    for path in orphan_files(table, older_than):
        table.io.delete(path)
        removed.append(path)
    return removed


def expire_snapshots(table: Table, older_than: timedelta, attempts: int = DEFAULT_ATTEMPTS) -> int:
    """Remove the snapshots older than ``older_than`` from the table's metadata (the current one is always kept);
    returns how many. Their data files stay until ``remove_orphans`` deletes the ones nothing references any more.
    Retried on a refreshed table when a load commits meanwhile."""
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    for attempt in range(1, attempts + 1):
        table.refresh()
        cutoff = clock.system_utc_now() - older_than
        current = table.current_snapshot()
        expired = [
            s.snapshot_id
            for s in table.snapshots()
            if s.timestamp_ms < cutoff.timestamp() * 1000 and (current is None or s.snapshot_id != current.snapshot_id)
        ]
        if not expired:
            return 0
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        except CommitFailedException:
            if attempt == attempts:
                raise
            backoff(attempt)
            continue
        return len(expired)
    return 0
