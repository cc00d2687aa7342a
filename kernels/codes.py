"""The 2-bit genotype codes of the store's packed block and the block's row width.

Four samples per byte: sample ``s`` is in byte ``s // 4`` at bits ``2*(s % 4)`` (low) and
``2*(s % 4) + 1`` (high), PLINK .bed order; the padding bits of a row's last byte are 0.
"""

from __future__ import annotations

HOM_REF, HET, HOM_ALT, MISSING = 0, 1, 2, 3


def packed_bytes(n_samples: int) -> int:
    """Bytes per row of an in-memory packed block: ceil(n_samples / 4), 0 for no samples.

    Four samples per byte, sample ``s`` at bits ``2*(s % 4)``, padding bits 0. This is the
    width the kernels accept (a block of 0 samples has 0 bytes per row); the stored column
    uses ``packed_width``.
    """
    return (n_samples + 3) // 4


def packed_width(n_samples: int) -> int:
    """Bytes per variant row of the stored packed genotypes: max(1, ceil(n_samples / 4)).

    Four samples per byte, sample ``s`` at bits ``2*(s % 4)`` (low bit first), padding bits
    of the last byte 0. At least 1 byte, so the Parquet fixed-size binary column type is valid
    even for 0 samples.
    """
    return max(1, packed_bytes(n_samples))
