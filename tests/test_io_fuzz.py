"""A bounded fuzzer of model and checkpoint files (about a minute in all).

Real files are mutated byte by byte (bit flips, truncations, splices, overwrites, insertions,
deletions) and structurally (a value anywhere in the header or in a metadata field's JSON
replaced or deleted, with the checksum recomputed or not).  Whatever the bytes: only
``fn.FormatError`` escapes loading, loading allocates no more than a small multiple of the file's
size, nothing hangs, a changed file whose checksum was not recomputed is always refused, and a
file that loads gives a model that predicts.
"""
import contextlib
import hashlib
import json
import signal
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnn as fn

# Sized so that the two tests take about a minute together on one core.
BYTE_EXAMPLES = 5000
EDIT_EXAMPLES = 5000
HANG_SECONDS = 10


def _seeds():
    """Real files: a float32 model (dropout, batch norm, standardizer, string classes) and a
    float64 checkpoint (Adam moments, a schedule, history)."""
    import os
    import tempfile
    X, y = fn.datasets.digits()
    X, y = X[:200], y[:200]
    model = fn.MLP(64, [fn.Dense(12, "relu", keep_prob=0.9), fn.Dense(6, "tanh", batch_norm=True),
                        fn.Dense(10, "softmax")], seed=1)
    model.standardizer = fn.data.Standardizer().fit(X)
    model.classes_ = np.array(list("abcdefghij"))
    fn.Trainer(model, batch_size=50).fit(X, model.classes_[y], epochs=1, progress=False)
    Xm, ym = fn.datasets.moons(n=100, seed=0)
    net = fn.MLP(2, [fn.Dense(8, "tanh"), fn.Dense(2, "softmax")], dtype="float64", seed=2)
    trainer = fn.Trainer(net, optimizer=fn.optim.Adam(0.01),
                         schedule=fn.schedules.StepDecay(2), batch_size=25)
    trainer.fit(Xm, ym, epochs=2, validation_data=(Xm, ym), progress=False)
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, save, X_ok in (("model", model.save, X[:5]),
                                 ("checkpoint", trainer.save_checkpoint, Xm[:5])):
            path = os.path.join(folder, f"{name}.safetensors")
            save(path)
            with open(path, "rb") as f:
                out[name] = (f.read(), X_ok)
    return out


pytestmark = pytest.mark.skipif(not hasattr(signal, "setitimer"),
                                reason="the hang guard needs signal.setitimer (POSIX)")
SEEDS = _seeds()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "f.safetensors"


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds):
    """Raise _Hang in the main thread if the block runs longer than ``seconds``."""
    def expire(signum, frame):
        raise _Hang(f"loading took more than {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _load_all(kind, path, X_ok):
    """Load ``path`` every way its kind allows; True if it loaded (then it must predict)."""
    loaders = [fn.load] + ([lambda p: fn.Trainer.load_checkpoint(p).model]
                           if kind == "checkpoint" else [])
    loaded = []
    for loader in loaders:
        try:
            loaded.append(loader(path))
        except fn.FormatError:
            pass
    for model in loaded:
        assert model.predict(X_ok).shape[0] == len(X_ok)
    return bool(loaded)


def _check(kind, blob, path, checksum_fixed):
    """The fuzzer's oracle for one mutated file."""
    original, X_ok = SEEDS[kind]
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        with _deadline(HANG_SECONDS):
            loaded = _load_all(kind, path, X_ok)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * len(blob) + 100_000, f"{peak} bytes allocated for a {len(blob)}-byte file"
    if loaded and not checksum_fixed:
        assert blob == original, "a changed file loaded although its checksum was not redone"


# ---- byte-level mutations --------------------------------------------------------------------

def _mutation(n):
    """One edit of a blob of n bytes, as (name, arguments)."""
    pos = st.integers(0, max(n - 1, 0))
    return st.one_of(
        st.tuples(st.just("flip"), st.lists(st.integers(0, 8 * n - 1), min_size=1, max_size=6)),
        # Hypothesis favours small and boundary integers: these bits fall anywhere, uniformly
        st.tuples(st.just("flip anywhere"), st.tuples(st.randoms(use_true_random=False),
                                                      st.integers(1, 3))),
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("splice"), st.tuples(pos, pos, st.integers(1, 256),
                                               st.sampled_from(sorted(SEEDS)))),
        st.tuples(st.just("overwrite"), st.tuples(pos, st.binary(min_size=1, max_size=16))),
        st.tuples(st.just("insert"), st.tuples(pos, st.binary(min_size=1, max_size=16))),
        st.tuples(st.just("delete"), st.tuples(pos, st.integers(1, 64))),
    )


def _apply(blob, mutation):
    name, args = mutation
    out = bytearray(blob)
    if name.startswith("flip"):
        if name == "flip anywhere":
            rng, count = args
            args = [rng.randrange(8 * len(out)) for _ in range(count)]
        for bit in args:
            if bit // 8 < len(out):
                out[bit // 8] ^= 1 << (bit % 8)
    elif name == "truncate":
        del out[args:]
    elif name == "splice":  # bytes from somewhere in a real file, pasted elsewhere
        src, dst, length, other = args
        source = SEEDS[other][0]
        out[dst:dst + length] = source[src:src + length]
    elif name == "overwrite":
        at, data = args
        out[at:at + len(data)] = data
    elif name == "insert":
        at, data = args
        out[at:at] = data
    else:
        at, length = args
        del out[at:at + length]
    return bytes(out)


@settings(max_examples=BYTE_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_byte_mutations_only_raise_format_error(target, data):
    kind = data.draw(st.sampled_from(sorted(SEEDS)), label="seed file")
    blob = SEEDS[kind][0]
    for mutation in data.draw(st.lists(_mutation(len(blob)), min_size=1, max_size=3),
                              label="mutations"):
        blob = _apply(blob, mutation) if blob else blob
    _check(kind, blob, target, checksum_fixed=False)


# ---- structured header edits -----------------------------------------------------------------

def _split(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _pack(header, data, fix_checksum):
    """A file from a header and data; with ``fix_checksum`` the whole-file SHA-256 is redone
    (written independently of fastnn: the file with the digest's 64 characters as zeros)."""
    meta = header.get("__metadata__")
    if fix_checksum and isinstance(meta, dict):
        meta["checksum"] = "0" * 64
        h = json.dumps(header).encode()
        meta["checksum"] = hashlib.sha256(struct.pack("<Q", len(h)) + h + data).hexdigest()
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def _paths(value, prefix=()):
    """Every path into a JSON value; metadata strings holding JSON are entered too (marked)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))
    elif isinstance(value, str) and len(prefix) == 2 and prefix[0] == "__metadata__":
        try:
            inner = json.loads(value)
        except ValueError:
            return
        yield from _paths(inner, prefix + ("<json>",))


PATHS = {kind: [p for p in _paths(_split(blob)[0]) if p] for kind, (blob, _) in SEEDS.items()}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=12) | st.sampled_from([0, 1, -1, 2**31, 2**63, 1e-300, "F32", "F64"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _edit(value, path, new, delete):
    """``value`` with the item at ``path`` replaced by ``new`` (or deleted)."""
    if not path:
        return new
    key, rest = path[0], path[1:]
    if key == "<json>":
        return json.dumps(_edit(json.loads(value), rest, new, delete))
    if not rest and delete:
        del value[key]
        return value
    value[key] = _edit(value[key], rest, new, delete)
    return value


def _nearby(old):
    """Plausible wrong values for an existing one: off by one, negated, scaled, emptied."""
    if isinstance(old, bool) or old is None:
        return st.sampled_from([None, True, False, 0, 1])
    if isinstance(old, (int, float)):
        return st.sampled_from([old + 1, old - 1, -old, old * 2, old * 10**6, 0, float(old)])
    if isinstance(old, list):
        return st.sampled_from([[], old[::-1], old[:-1], old + old[-1:]] if old else [[], [0]])
    if isinstance(old, str):
        return st.sampled_from(["", old[::-1], old + "x"])
    return st.just({})


def _get(value, path):
    for key in path:
        value = json.loads(value) if key == "<json>" else value[key]
    return value


@settings(max_examples=EDIT_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_header_edits_only_raise_format_error(target, data):
    kind = data.draw(st.sampled_from(sorted(SEEDS)), label="seed file")
    blob = SEEDS[kind][0]
    header, body = _split(blob)
    path = data.draw(st.sampled_from(PATHS[kind]), label="path")
    old = _get(header, path)
    delete = data.draw(st.booleans(), label="delete") and path[-1] != "<json>" \
        and not isinstance(path[-1], int)
    new = None if delete else data.draw(_nearby(old) | json_values, label="new value")
    fix_checksum = data.draw(st.booleans(), label="fix checksum")
    mutated = _pack(_edit(header, path, new, delete), body, fix_checksum)
    _check(kind, mutated, target, checksum_fixed=fix_checksum)
