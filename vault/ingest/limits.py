"""Input size limits of ingest: what bounds memory whatever the input (see docs/format.md).

Compressed input can inflate by a factor of ~1000 (deflate's maximum), so nothing is ever
read as "the rest of the file" or "the rest of the line": every step is bounded.
"""

from __future__ import annotations

import numpy as np

# BGZF: BSIZE is a 16-bit field, so a block (and, by the SAM/BAM specification, the data it
# inflates to) is at most 64 KiB. A block declaring a larger ISIZE is refused unread.
BGZF_MAX_BLOCK = 1 << 16
# At most this many inflated bytes per BGZF inflate task (1024 full blocks); a normal 2 MiB
# slice of compressed VCF inflates to 20-60 MB and stays one task.
BGZF_MAX_INFLATE_PER_TASK = 64 << 20
# Plain gzip: one zlib step never returns more than this.
GZIP_MAX_STEP = 64 << 20
# The header: real ones are kilobytes; a #CHROM line with 500,000 sample ids is a few MB.
MAX_HEADER_BYTES = 64 << 20
MAX_HEADER_LINES = 1_000_000
# One data line: 1 MiB plus 1 KiB per sample (a GT-only line takes 4 bytes per sample, a
# line with GT:AD:DP:GQ:PL at a 6-allele site ~150), and never more than 1 GiB.
LINE_BASE = 1 << 20
LINE_PER_SAMPLE = 1 << 10
LINE_MAX = 1 << 30


def max_line_bytes(n_samples: int) -> int:
    """Longest data line (bytes, without the newline) accepted for ``n_samples`` samples."""
    return min(LINE_MAX, LINE_BASE + LINE_PER_SAMPLE * n_samples)


class OverlongLine(np.ndarray):
    """Stands in the stream of data chunks for one line longer than ``max_line_bytes``.

    The line itself is never held in memory: this holds its first bytes plus a newline, and
    ``vcfparse.parse_chunk`` turns it into one line with the error ``E_LONG_LINE``, so the
    pipeline reports it with file and line number (or skips it with ``--skip-invalid``).
    """


def overlong_line(prefix: bytes) -> OverlongLine:
    return np.frombuffer(prefix[:200] + b"\n", np.uint8).view(OverlongLine)
