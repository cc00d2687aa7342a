"""Genotype counts per variant, overall and per group, in one pass over the packed block.

The block is the store's layout: ``packed`` uint8 (n_variants, ceil(n_samples / 4)), sample
``s`` in byte ``s // 4`` at bits ``2*(s % 4)`` (low) and ``2*(s % 4)+1`` (high); codes 0 hom-ref,
1 het, 2 hom-alt, 3 missing; padding bits 0.

How it counts: each row is copied into a zero-padded uint64 buffer; per 64-bit word (32
samples) the low and high bit planes give het (lo & ~hi), hom-alt (hi & ~lo) and missing
(lo & hi) bit sets, which are intersected with one precomputed mask per group and counted with
POPCNT. Hom-ref is the group size minus the other three, so the zero padding bits are never
counted. Variants are split in chunks over the cores (``prange``) with the GIL released.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from kernels.codes import HET, HOM_ALT, HOM_REF, MISSING, packed_bytes
from kernels.jit import jit, popcount64

_LOW_BITS = np.uint64(0x5555555555555555)
# Above this many groups the per-group bit masks cost more than one table look-up per sample.
MAX_MASK_GROUPS = 24


@dataclass(frozen=True)
class GenotypeCounts:
    """Genotype counts; the last axis is indexed by code (0 hom-ref, 1 het, 2 hom-alt, 3 missing).

    ``overall``: int64 (n_variants, 4), all samples (including those in no group).
    ``groups``: int64 (n_variants, n_groups, 4), one slot per group 0..n_groups-1.
    """

    overall: np.ndarray
    groups: np.ndarray


@jit(parallel=True)
def _count_masked(packed: np.ndarray, masks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Counts (n_variants, n_masks, 4) for the samples selected by each mask.

    ``masks``: uint64 (n_masks, n_words), bit 2*(s % 32) of word s // 32 set when sample s is
    in that mask (low-bit positions only). ``sizes``: int64 (n_masks,), members per mask.
    """
    n_var, n_bytes = packed.shape
    n_masks, n_words = masks.shape
    out = np.zeros((n_var, n_masks, 4), dtype=np.int64)
    n_chunks = min(n_var, 256)
    for c in numba.prange(n_chunks):
        buf = np.zeros(n_words, dtype=np.uint64)
        buf8 = buf.view(np.uint8)
        het = np.zeros(n_words, dtype=np.uint64)
        alt = np.zeros(n_words, dtype=np.uint64)
        mis = np.zeros(n_words, dtype=np.uint64)
        start = c * n_var // n_chunks
        stop = (c + 1) * n_var // n_chunks
        for v in range(start, stop):
            for j in range(n_bytes):
                buf8[j] = packed[v, j]
            for i in range(n_words):
                w = buf[i]
                lo = w & _LOW_BITS
                hi = (w >> np.uint64(1)) & _LOW_BITS
                het[i] = lo & ~hi
                alt[i] = hi & ~lo
                mis[i] = lo & hi
            for k in range(n_masks):
                n_het = 0
                n_alt = 0
                n_mis = 0
                for i in range(n_words):
                    m = masks[k, i]
                    n_het += popcount64(het[i] & m)
                    n_alt += popcount64(alt[i] & m)
                    n_mis += popcount64(mis[i] & m)
                out[v, k, HET] = n_het
                out[v, k, HOM_ALT] = n_alt
                out[v, k, MISSING] = n_mis
                out[v, k, HOM_REF] = sizes[k] - n_het - n_alt - n_mis
    return out


@jit(parallel=True)
def _count_all(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Counts (n_variants, 4) over all samples; no mask is needed because padding codes are 0."""
    n_var, n_bytes = packed.shape
    n_words = (n_bytes + 7) // 8
    out = np.zeros((n_var, 4), dtype=np.int64)
    n_chunks = min(n_var, 256)
    for c in numba.prange(n_chunks):
        buf = np.zeros(n_words, dtype=np.uint64)
        buf8 = buf.view(np.uint8)
        start = c * n_var // n_chunks
        stop = (c + 1) * n_var // n_chunks
        for v in range(start, stop):
            for j in range(n_bytes):
                buf8[j] = packed[v, j]
            n_het = 0
            n_alt = 0
            n_mis = 0
            for i in range(n_words):
                w = buf[i]
                lo = w & _LOW_BITS
                hi = (w >> np.uint64(1)) & _LOW_BITS
                n_het += popcount64(lo & ~hi)
                n_alt += popcount64(hi & ~lo)
                n_mis += popcount64(lo & hi)
            out[v, HET] = n_het
            out[v, HOM_ALT] = n_alt
            out[v, MISSING] = n_mis
            out[v, HOM_REF] = n_samples - n_het - n_alt - n_mis
    return out


@jit(parallel=True)
def _count_lookup(
    packed: np.ndarray, n_samples: int, group: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per-sample fallback for many groups: counts (n_variants, n_groups + 1, 4), slot
    n_groups holds the samples in no group."""
    n_var, n_bytes = packed.shape
    out = np.zeros((n_var, n_groups + 1, 4), dtype=np.int64)
    for v in numba.prange(n_var):
        for j in range(n_bytes):
            byte = packed[v, j]
            for t in range(4):
                s = 4 * j + t
                if s >= n_samples:
                    break
                g = group[s]
                if g < 0:
                    g = n_groups
                out[v, g, (byte >> (2 * t)) & 3] += 1
    return out


def _check_block(packed: np.ndarray, n_samples: int) -> np.ndarray:
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2:
        raise ValueError("packed must be a 2-D uint8 array (n_variants, ceil(n_samples/4))")
    if n_samples < 0 or packed.shape[1] != packed_bytes(n_samples):
        raise ValueError(
            f"packed has {packed.shape[1]} bytes per row; {n_samples} samples need "
            f"{packed_bytes(n_samples)}"
        )
    return np.ascontiguousarray(packed)


def _check_group(group: np.ndarray | None, n_samples: int, n_groups: int) -> np.ndarray:
    if group is None:
        if n_groups:
            raise ValueError("n_groups > 0 needs a group array")
        return np.full(n_samples, -1, dtype=np.int32)
    group = np.ascontiguousarray(group, dtype=np.int32)
    if group.shape != (n_samples,):
        raise ValueError(f"group must have shape ({n_samples},), got {group.shape}")
    if n_samples and (group.min() < -1 or group.max() >= n_groups):
        raise ValueError(f"group values must be -1 (no group) or 0..{n_groups - 1}")
    return group


def group_masks(group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Bit masks uint64 (n_groups + 1, n_words) at the low bit of each sample's 2-bit slot,
    one per group and a last one for samples in no group (-1), and the member counts."""
    n_samples = group.shape[0]
    n_words = (packed_bytes(n_samples) + 7) // 8
    masks = np.zeros((n_groups + 1, n_words), dtype=np.uint64)
    slot = np.where(group < 0, n_groups, group)
    s = np.arange(n_samples)
    bits = np.left_shift(np.uint64(1), (2 * (s % 32)).astype(np.uint64))
    np.bitwise_or.at(masks, (slot, s // 32), bits)
    sizes = np.bincount(slot, minlength=n_groups + 1).astype(np.int64)
    return masks, sizes


def count_genotypes(
    packed: np.ndarray,
    n_samples: int,
    group: np.ndarray | None = None,
    n_groups: int = 0,
) -> GenotypeCounts:
    """Count hom-ref / het / hom-alt / missing per variant, overall and per group, in one pass.

    ``group``: int32 (n_samples,), values 0..n_groups-1, or -1 for a sample in no group (still
    counted in ``overall``). Per-group counts add up to ``overall`` minus the ungrouped samples.
    """
    packed = _check_block(packed, n_samples)
    group = _check_group(group, n_samples, n_groups)
    n_var = packed.shape[0]
    if n_groups == 0:
        overall = _count_all(packed, n_samples) if n_var else np.zeros((0, 4), np.int64)
        return GenotypeCounts(overall=overall, groups=np.zeros((n_var, 0, 4), np.int64))
    if n_var == 0:
        return GenotypeCounts(np.zeros((0, 4), np.int64), np.zeros((0, n_groups, 4), np.int64))
    if n_groups <= MAX_MASK_GROUPS:
        masks, sizes = group_masks(group, n_groups)
        if sizes[n_groups] == 0:  # nobody outside the groups: skip the empty mask
            masks = np.ascontiguousarray(masks[:n_groups])
            sizes = sizes[:n_groups]
        per_mask = _count_masked(packed, masks, sizes)
    else:
        per_mask = _count_lookup(packed, n_samples, group, n_groups)
    overall = per_mask.sum(axis=1)
    return GenotypeCounts(overall=overall, groups=np.ascontiguousarray(per_mask[:, :n_groups]))
