"""Test helper: edit a safetensors file's header or data in place, to make bad files."""
import hashlib
import json
import struct


def _pack(header, data):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + bytes(data)


def rewrite(path, mutate_header=None, mutate_data=None, truncate=None, fix_checksum=False):
    """Rewrite ``path`` after ``mutate_header(header)`` / ``mutate_data(header, data)``;
    ``fix_checksum`` recomputes fastnn's checksum (so only the other checks can object);
    ``truncate`` cuts the file to that many bytes."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = bytearray(blob[8 + n:])
    if mutate_header:
        mutate_header(header)
    if mutate_data:
        mutate_data(header, data)
    if fix_checksum:
        meta = header["__metadata__"]
        if meta.get("format_version") == "1":  # version 1 summed the data section only
            meta["checksum"] = hashlib.sha256(bytes(data)).hexdigest()
        else:  # the whole file, read with the checksum's own 64 digits as zeros
            meta["checksum"] = "0" * 64
            meta["checksum"] = hashlib.sha256(_pack(header, data)).hexdigest()
    out = _pack(header, data)
    if truncate is not None:
        out = out[:truncate]
    with open(path, "wb") as f:
        f.write(out)
