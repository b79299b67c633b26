"""The journal: one JSON line per finished trial, flushed and fsynced; never a pickle.  The only
code of the search that touches files.  Its first line says which search wrote it (the
objective's fingerprint, the space, the metric and the pruner): a journal is resumed only by the
same search.
"""
import json
import os
import warnings

from .._interrupt import _DeferredInterrupt

# ---- the journal -----------------------------------------------------------------------------

_RECORD_KEYS = {"trial_id": str, "round": int, "index": int, "seed": int, "config": dict,
                "metrics": dict, "status": str}
_STATUSES = ("ok", "pruned", "failed")
# The first line of a journal: which search wrote it (see RandomSearch._fingerprint).
_HEADER_KEY = "fastnn_search_journal"
_JOURNAL_VERSION = 1


def _valid_record(rec):
    if not isinstance(rec, dict):
        return False
    for key, kind in _RECORD_KEYS.items():
        if not isinstance(rec.get(key), kind) or isinstance(rec.get(key), bool):
            return False
    return rec["status"] in _STATUSES


def _read_journal(path):
    """``(header, records, corrupt line numbers)`` of a journal file; ``(None, {}, [])`` when
    it does not exist.  Regular files only (a FIFO or a device is refused unread)."""
    from .._files import open_regular
    try:
        f, _ = open_regular(path, "journal")
    except FileNotFoundError:
        return None, {}, []
    with f:
        data = f.read()
    header, records, bad = None, {}, []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad.append(lineno)
            continue
        if isinstance(rec, dict) and _HEADER_KEY in rec and header is None and not records:
            header = rec
            continue
        if not _valid_record(rec):
            bad.append(lineno)
            continue
        records.setdefault(rec["trial_id"], rec)
    return header, records, bad


def _warn_corrupt(path, bad, stacklevel):
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        warnings.warn(f"journal {os.fspath(path)!r}: skipped {len(bad)} corrupt line(s) "
                      f"(line {shown})", RuntimeWarning, stacklevel=stacklevel + 1)


def read_journal(path):
    """The trial records of a journal file, ``trial_id -> record``, first record of an id wins.

    The header line (which search wrote the journal) is not a record.  Lines that are not a
    JSON trial record (such as a last line truncated by a crash) are skipped with a
    ``RuntimeWarning``.  Only a regular file is read (``fastnn.FormatError`` otherwise); JSON
    only: nothing is ever unpickled.
    """
    _, records, bad = _read_journal(path)
    _warn_corrupt(path, bad, 2)
    return records


def _first_difference(a, b, where=""):
    """Where two JSON values first differ, as ``(path, a_part, b_part)``; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}{key}", a.get(key, "<absent>"), b.get(key, "<absent>")
            diff = _first_difference(a[key], b[key], f"{where}{key}.")
            if diff:
                return diff
        return None
    return None if a == b else (where.rstrip(".") or "value", a, b)


class _Journal:
    """Appends records as JSON lines, each flushed and fsynced; records each trial id once.

    A new journal starts with a header line describing the search (its fingerprint); it is
    created, or replaced, atomically."""

    def __init__(self, path, known, header=None):
        self.known = set(known)
        self.file = None
        if path is None:
            return
        if header is not None:
            from .._files import atomic_write
            atomic_write(path, json.dumps(header, allow_nan=False, separators=(",", ":"))
                         .encode("utf-8") + b"\n")
        self.file = open(path, "ab")  # noqa: SIM115 - open for the whole search
        # A crash may have left a truncated last line: start on a fresh line.
        if self.file.tell() > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._write(b"\n")

    def _write(self, data):
        self.file.write(data)
        self.file.flush()
        os.fsync(self.file.fileno())

    def add(self, record):
        """Record a finished trial; False (and nothing written) if its id is already there.

        Ctrl-C while the line is written takes effect once it is written and fsynced (the
        ``KeyboardInterrupt`` is raised then), so every line is whole and counted."""
        if record["trial_id"] in self.known:
            return False
        if self.file is not None:
            line = json.dumps(record, allow_nan=False, separators=(",", ":"))
            with _DeferredInterrupt() as sigint:
                self._write(line.encode("utf-8") + b"\n")
                self.known.add(record["trial_id"])
            if sigint.pending:
                raise KeyboardInterrupt
        self.known.add(record["trial_id"])
        return True

    def close(self):
        if self.file is not None:
            self.file.close()
