"""NumPy twin of the dropout masks of ``src_c/dropout.c`` (the oracle for its tests).

Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC11; the Random123 library) maps a counter ``c = (c0, c1, c2, c3)`` and a key ``k = (k0, k1)``
of 32-bit words to four 32-bit words by 10 rounds of::

    (hi0, lo0) = M0 * c0,  (hi1, lo1) = M1 * c2          # 32 x 32 -> 64-bit products
    c = (hi1 ^ c1 ^ k0,  lo1,  hi0 ^ c3 ^ k1,  lo0)

with ``M0 = 0xD2511F53``, ``M1 = 0xCD9E8D57`` and the key bumped ``k += (0x9E3779B9,
0xBB67AE85)`` (mod 2**32) between rounds.

Dropout: element ``e`` (row-major index in one step's activation) of layer ``layer`` at training
step ``step`` is kept iff ``u(e) < floor(keep_prob * 2**32)``, where ``u(e)`` is word ``e % 4`` of
``philox4x32(ctr=(e//4 mod 2**32, e//4 >> 32, layer, step mod 2**32), key=(seed mod 2**32,
seed >> 32))``.
"""
import math

import numpy as np

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK = 0xFFFFFFFF


def philox4x32(ctr, key):
    """Philox4x32-10 of ``ctr`` (..., 4) under ``key`` (..., 2), broadcast; returns uint32 (..., 4).

    Known answer: ``philox4x32([0, 0, 0, 0], [0, 0])`` is
    ``[0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]``.
    """
    ctr = np.asarray(ctr, dtype=np.uint64) & _MASK
    key = np.asarray(key, dtype=np.uint64) & _MASK
    c0, c1, c2, c3 = (ctr[..., w] for w in range(4))
    k0, k1 = key[..., 0], key[..., 1]
    m0, m1, mask = np.uint64(_M0), np.uint64(_M1), np.uint64(_MASK)
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(_W0)) & mask
            k1 = (k1 + np.uint64(_W1)) & mask
        p0 = m0 * c0  # < 2**64: exact in uint64
        p1 = m1 * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0, p1 & mask,
                          (p0 >> np.uint64(32)) ^ c3 ^ k1, p0 & mask)
    return np.stack(np.broadcast_arrays(c0, c1, c2, c3), axis=-1).astype(np.uint32)


def keep_threshold(keep_prob):
    """``floor(keep_prob * 2**32)``, clamped to [0, 2**32 - 1] as ``fnn_keep_threshold``."""
    if not keep_prob > 0.0:
        return 0
    if keep_prob >= 1.0:
        return _MASK
    return int(math.floor(keep_prob * 4294967296.0))


def dropout_mask(seed, step, layer, e0, count, keep_prob):
    """Mask of elements ``e0 .. e0 + count - 1``: uint8 (count,), 1 kept, 0 dropped."""
    if count <= 0:
        return np.zeros(0, dtype=np.uint8)
    b0, b1 = e0 // 4, (e0 + count - 1) // 4
    blk = np.arange(b0, b1 + 1, dtype=np.uint64)
    ctr = np.stack([blk & np.uint64(_MASK), blk >> np.uint64(32),
                    np.full_like(blk, layer & _MASK), np.full_like(blk, step & _MASK)], axis=-1)
    words = philox4x32(ctr, [seed & _MASK, (seed >> 32) & _MASK]).reshape(-1)
    u = words[e0 - 4 * b0:e0 - 4 * b0 + count]
    return (u < np.uint32(keep_threshold(keep_prob))).astype(np.uint8)
