"""Files: opening the ones fastnn did not write itself (model files, checkpoints, data tables),
and writing its own atomically.

Design: a file is read only if it is a regular file.  Symlinks are followed, then the opened
descriptor is checked again, so a FIFO, a device or a directory is refused without being read
or waited on (the open does not block).  Nothing is read or allocated beyond what the file
holds: every size a file claims (a header's length, an array's shape, a zip member's size) is
checked against the file's own size before anything is allocated for it, and JSON is parsed
only after its nesting depth has been checked.  Whatever is wrong raises :class:`FormatError`.
A file is written through a temporary in the same folder, renamed over the target once it is
on disk; temporaries left by writers that were killed are removed by the next write of the
same file.
"""
import csv
import io
import json
import math
import os
import re
import stat
import tempfile
import warnings
import zipfile

import numpy as np

from ._validation import _describe

__all__ = ["FormatError", "check_path", "open_regular", "read_exact", "parse_json", "load_npy",
           "load_npz", "load_csv", "load_csv_labelled", "atomic_write"]


class FormatError(ValueError):
    """A file is not what it should be: truncated, corrupt, foreign, of a newer format version,
    inconsistent, or not a regular file."""

    __module__ = "fastnn"


def check_path(path, name="path"):
    """``path`` as a ``str``; a ``TypeError`` for anything that is not a path (an int would
    otherwise be taken for a file descriptor)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {_describe(path)}")
    return os.fsdecode(os.fspath(path))


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
# Opening a FIFO for reading must not wait for a writer; the descriptor is not inherited.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


def _refuse_unless_regular(path, mode):
    if not stat.S_ISREG(mode):
        kind = next((text for test, text in _KINDS if test(mode)), "not a plain file")
        raise FormatError(f"{path}: not a regular file ({kind}); only regular files are read")


def open_regular(path, name="path"):
    """``(file, size)``: ``path`` opened for binary reading, if it is a regular file.

    Raises
    ------
    TypeError
        ``path`` is not a path.
    FormatError
        Not a regular file (checked before opening and again on the opened descriptor).
    OSError
        It cannot be opened (missing, no permission).
    """
    path = check_path(path, name)
    _refuse_unless_regular(path, os.stat(path).st_mode)  # devices are not even opened
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        _refuse_unless_regular(path, st.st_mode)  # replaced between the two looks
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_exact(f, n, path):
    """Exactly ``n`` bytes from ``f`` into a new ``bytearray`` (the file shrank: FormatError)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise FormatError(f"{path}: truncated file (it ended {n - got} bytes early)")
        got += k
    return buf


# ---- JSON with bounded nesting ---------------------------------------------------------------

# A JSON string (skipped whole) or a bracket; brackets inside strings are never counted.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
# Python's own limit on the digits of an int read from text (3.11+), applied on every version.
_MAX_INT_DIGITS = 4300


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate key {dup!r}")
    return dict(pairs)


def _bounded_int(text):
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of more than {_MAX_INT_DIGITS} digits")
    return int(text)


def parse_json(text, what, max_depth):
    """``json.loads(text)`` once its nesting is known to be at most ``max_depth`` containers
    deep, with duplicate object keys refused (readers would disagree on which one counts).

    Raises FormatError naming ``what``.
    """
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        c = text[match.start()]
        if c in "[{":
            depth += 1
            if depth > max_depth:
                raise FormatError(f"{what} nests deeper than {max_depth} levels")
        elif c in "]}":
            depth -= 1
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise FormatError(f"{what} is not valid JSON ({exc})") from None


# ---- data tables (.npy, .npz, .csv) ----------------------------------------------------------

# The most deflate can expand data: about 1032 to 1; a zip member claiming more is a lie.
_MAX_DEFLATE_RATIO = 1032


def _npy_header(f, available, where):
    """Read an .npy header from ``f`` and check that the data it announces is exactly the
    ``available`` bytes that follow it.  Returns (shape, dtype)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"format version {version} is not supported")
    except (ValueError, TypeError, SyntaxError, RecursionError, EOFError) as exc:
        raise FormatError(f"{where}: not a readable .npy array ({exc})") from None
    if dtype.hasobject:
        raise FormatError(f"{where}: holds Python objects, which are never loaded (no pickle)")
    need = math.prod(shape) * dtype.itemsize
    left = available - f.tell()
    if need != left:
        raise FormatError(f"{where}: the header claims shape {shape} of {dtype} ({need} bytes) "
                          f"but {left} bytes follow it")
    return shape, dtype


def load_npy(path):
    """The array of an .npy file (regular file, header checked against the size, no pickle)."""
    f, size = open_regular(path)
    with f:
        _npy_header(f, size, path)
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except ValueError as exc:  # the file changed meanwhile
            raise FormatError(f"{path}: {exc}") from None


def load_npz(path, names):
    """The arrays ``names`` of an .npz file, each member checked before it is read: stored or
    deflated, its declared size within what deflate can produce from its compressed size,
    and its .npy header announcing exactly that size."""
    f, size = open_regular(path)
    with f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
            raise FormatError(f"{path}: not a readable .npz file ({exc})") from None
        with archive:
            members = {info.filename: info for info in archive.infolist()}
            missing = [n for n in names if f"{n}.npy" not in members]
            if missing:
                raise FormatError(f"{path}: an .npz data file needs arrays "
                                  f"{' and '.join(map(repr, names))}, it has "
                                  f"{sorted(m[:-4] for m in members if m.endswith('.npy'))}")
            for n in names:
                info = members[f"{n}.npy"]
                where = f"{path}[{n!r}]"
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise FormatError(f"{where}: unsupported zip compression "
                                      f"{info.compress_type}")
                limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED
                                              else _MAX_DEFLATE_RATIO) + 1024
                if info.compress_size > size or info.file_size > limit:
                    raise FormatError(f"{where}: the zip directory claims {info.file_size} "
                                      f"bytes from {info.compress_size} compressed bytes")
                try:
                    with archive.open(info) as member:
                        _npy_header(member, info.file_size, where)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise FormatError(f"{where}: unreadable zip member ({exc})") from None
        f.seek(0)
        try:
            with np.load(f, allow_pickle=False) as npz:
                return tuple(npz[n] for n in names)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise FormatError(f"{path}: {exc}") from None


def load_csv(path, skip_header=True):
    """A numeric CSV table as a 2-D float64 array (a regular file, so reading it is bounded by
    its size).  With ``skip_header``, a first row that is not numeric is taken as a header."""
    f, _ = open_regular(path)
    with io.TextIOWrapper(f) as text:
        try:
            skip = 0
            if skip_header:
                try:
                    [float(v) for v in text.readline().strip().split(",")]
                except ValueError:
                    skip = 1
                text.seek(0)
            with warnings.catch_warnings():  # an empty file: the caller's shape check says so
                warnings.simplefilter("ignore", UserWarning)
                return np.loadtxt(text, delimiter=",", skiprows=skip, ndmin=2)
        except ValueError as exc:  # UnicodeDecodeError included
            raise FormatError(f"{path}: not a numeric CSV table ({exc})") from None


def load_csv_labelled(path):
    """``(X, y)`` from a CSV table whose last column is the target: ``X`` the other columns
    (numbers, float64), ``y`` the last column as float64 if every entry is a number, else as
    text (class labels such as ``cat``; surrounding spaces removed).  A first row whose
    feature columns are not all numbers is a header.  Fields may be quoted (``"a, b"``)."""
    f, _ = open_regular(path)
    with io.TextIOWrapper(f) as text:
        try:
            first = next(csv.reader([text.readline()]), [])
            try:
                [float(v) for v in first[:-1]]
                skip = 0
            except ValueError:
                skip = 1
            text.seek(0)
            with warnings.catch_warnings():  # an empty file: the caller's shape check says so
                warnings.simplefilter("ignore", UserWarning)
                table = np.loadtxt(text, delimiter=",", skiprows=skip, ndmin=2, dtype=str,
                                   quotechar='"')
        except (ValueError, csv.Error) as exc:  # UnicodeDecodeError included
            raise FormatError(f"{path}: not a readable CSV table ({exc})") from None
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise FormatError(f"{path}: expected a table with feature columns and a last target "
                          f"column, got {table.shape[0]} row(s) of {table.shape[1]} column(s)")
    try:
        X = table[:, :-1].astype(np.float64)
    except ValueError as exc:
        raise FormatError(f"{path}: not a numeric CSV table in its feature columns "
                          f"({exc})") from None
    labels = np.char.strip(table[:, -1])
    try:
        y = labels.astype(np.float64)
    except ValueError:
        y = labels
    return X, y


# ---- writing ----------------------------------------------------------------------------------

def _current_umask():
    """The process's umask, read without changing it where the kernel reports it (Linux 4.7+:
    /proc/self/status), so that threads creating files meanwhile never see a umask of 0.
    Elsewhere it is read by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


# A temporary is named ".fastnn-<pid>-<random>.<target name>.tmp": a later save of the same file
# can tell which writer made it.  Long names are cut so the whole stays a legal file name.
_TMP_PREFIX, _TMP_NAME_KEEP = ".fastnn-", 120
_TMP_RANDOM = re.compile(r"[a-z0-9_]+")  # the characters tempfile.mkstemp draws


def _writer_alive(pid):
    """Whether process ``pid`` may still be writing (only POSIX can tell; elsewhere: yes)."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # someone else's process, or not a pid: leave it alone
        return True
    return True


def _remove_stale_temporaries(folder, target):
    """Remove the temporaries that saves of ``target`` left when their process was killed.

    A temporary is stale when its writer's process is gone and nobody holds its lock (a
    writer locks its temporary while writing; the kernel drops the lock when the process dies,
    so a live writer in another pid namespace still counts).  Best effort: errors are ignored.
    """
    try:
        import fcntl
    except ImportError:  # no way to tell a live writer from a dead one here
        return
    suffix = f".{target[:_TMP_NAME_KEEP]}.tmp"
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(_TMP_PREFIX) and name.endswith(suffix)):
            continue
        pid, sep, rand = name[len(_TMP_PREFIX):-len(suffix)].partition("-")
        if not (sep and pid.isdigit() and _TMP_RANDOM.fullmatch(rand)) or _writer_alive(int(pid)):
            continue
        tmp = os.path.join(folder, name)
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(tmp)
        except OSError:  # locked by a live writer, or already gone
            pass
        finally:
            os.close(fd)


def _lock(fd):
    """Hold an exclusive lock on the temporary while writing it (see above); best effort."""
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (ImportError, OSError):
        pass


def atomic_write(path, data):
    """Write bytes to path via a temporary file in the same folder, fsync, os.replace; first
    remove the temporaries earlier saves of the same file left when they were killed."""
    path = check_path(path)
    folder = os.path.dirname(os.path.abspath(path))
    target = os.path.basename(path)
    _remove_stale_temporaries(folder, target)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-",
                               suffix=f".{target[:_TMP_NAME_KEEP]}.tmp", dir=folder)
    try:
        _lock(fd)
        # mkstemp creates the file 0600; give it the permissions open() would (0666 & ~umask)
        os.chmod(tmp, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable too (best effort: not every platform opens folders)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
