"""Hypothesis strategies for hostile VCF input: structure-aware records, then byte damage,
then a container (plain, gzip, BGZF written here so its framing can be damaged too)."""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass

from hypothesis import strategies as st

ALLELES = [".", "0", "1", "2", "3", "10", "01", "-1", "a", ""]
SEPS = ["/", "|", "\\", ":"]
NOISE = [b"\t", b"\n", b"\r", b":", b"/", b"|", b".", b"0", b"1", b"2", b"9", b"\x00", b"\xff",
         b" ", b",", b"#", b"<", b">", b"=", b"A", b"*"]


@st.composite
def genotype(draw: st.DrawFn, n_alt: int, clean: bool, with_dp: bool) -> str:
    """One sample's GT (and maybe a DP after it): within the rules when ``clean``, else from a
    wider alphabet (bad alleles, separators, ploidy 3)."""
    if clean:
        ploidy = draw(st.sampled_from([1, 2, 2, 2, 2]))
        allele = st.sampled_from([".", *(str(a) for a in range(n_alt + 1))])
        seps = st.sampled_from(["/", "|"])
    else:
        ploidy = draw(st.sampled_from([1, 2, 2, 3]))
        allele = st.sampled_from(ALLELES)
        seps = st.sampled_from(SEPS)
    alleles = [draw(allele) for _ in range(ploidy)]
    gt = alleles[0] + "".join(draw(seps) + a for a in alleles[1:])
    if with_dp and draw(st.booleans()):
        gt += ":" + draw(st.sampled_from(["5", "."]))
    elif not clean and draw(st.integers(0, 4)) == 0:
        gt += ":" + draw(st.sampled_from(["5", ".", "1,2", "", "0/1"]))
    return gt


ALTS = {".": 0, "G": 1, "T": 1, "G,T": 2, "G,T,C": 3, "<DEL>": 1, "*": 1, "AT": 1,
        "C[2:100[": 1, "G,T,C,<NON_REF>,A,AA,AAA,AAAA,CC,CCC,GG": 11}


@st.composite
def vcf_text(draw: st.DrawFn) -> tuple[str, int]:
    """VCF text: mostly (7 in 10) well-formed, so that the parser accepts it and its genotypes
    are compared; else with hostile header lines, fields and GT values."""
    clean = draw(st.integers(0, 9)) < 7
    n = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 9, 17, 33]))
    samples = [f"S{i}" for i in range(n)]
    if not clean and draw(st.integers(0, 9)) == 0 and n >= 2:
        samples[1] = samples[0]  # a duplicate sample id
    contigs = ["1", "2", "chrX"]
    versions = ["VCFv4.2", "VCFv4.3", "VCFv4.1"] + ([] if clean else ["bogus"])
    head = ["##fileformat=" + draw(st.sampled_from(versions))]
    if draw(st.booleans()):
        head += [f"##contig=<ID={c}>" for c in contigs]
    metas = ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
             '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">', "##source=fuzz"]
    head += draw(st.lists(st.sampled_from(metas + ([] if clean else
                                                   ["##weird", "#", "##x=<ID=1"])),
                          max_size=4, unique=clean))
    cols = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
    if n or draw(st.booleans()):
        cols.append("FORMAT")
    head.append("\t".join(cols + samples))
    lines = []
    pos = draw(st.integers(0 if not clean else 1, 3))
    chrom_i = 0
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.integers(0, 5)) == 0:
            if clean:
                if chrom_i < 2:
                    chrom_i += 1
                    pos = draw(st.integers(1, 3))
            else:
                chrom_i = min(chrom_i + 1, 2) if draw(st.integers(0, 5)) else 0
        pos += draw(st.integers(0, 40))
        if not clean and draw(st.integers(0, 15)) == 0:
            pos -= 5
        ref = draw(st.sampled_from(["A", "C", "G", "T", "N", "AC"] +
                                   ([] if clean else ["a", ".", "X"])))
        alt = draw(st.sampled_from(list(ALTS) + ([] if clean else ["G,", "A C"])))
        n_alt = ALTS.get(alt, 1)
        fmt = draw(st.sampled_from(["GT", "GT", "GT", "GT:DP", "DP"] +
                                   ([] if clean else ["DP:GT", "GT:"])))
        gts = [draw(genotype(n_alt, clean, fmt == "GT:DP")) for _ in range(n)]
        fields = [contigs[chrom_i], str(pos), draw(st.sampled_from([".", "rs1"])), ref, alt,
                  draw(st.sampled_from([".", "50", "1e2", "0.5"] +
                                       ([] if clean else ["-1", "nan", "x"]))),
                  draw(st.sampled_from(["PASS", ".", "q10"])),
                  draw(st.sampled_from([".", "DP=3", "DP"]))]
        if len(cols) > 8:
            fields.append(fmt)
        if not clean:
            extra = draw(st.integers(0, 12))
            if extra == 0 and gts:
                gts = gts[:-1]  # one sample column too few
            elif extra == 1:
                gts = [*gts, "0/1"]  # one too many
        lines.append("\t".join(fields + gts))
    eol = "\r\n" if draw(st.integers(0, 9)) == 0 else "\n"
    text = eol.join(head + lines)
    if clean or draw(st.integers(0, 9)):
        text += eol
    return text, n


@st.composite
def damaged(draw: st.DrawFn, data: bytes, max_edits: int = 3) -> bytes:
    """``data`` with up to ``max_edits`` byte edits (replace, insert, delete), maybe cut."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, max_edits))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        kind = draw(st.sampled_from(["replace", "insert", "delete"]))
        if kind == "replace":
            out[i:i + 1] = draw(st.sampled_from(NOISE))
        elif kind == "insert":
            out[i:i] = draw(st.sampled_from(NOISE))
        else:
            del out[i:i + draw(st.integers(1, 8))]
    if out and draw(st.integers(0, 7)) == 0:
        out = out[:draw(st.integers(0, len(out)))]
    return bytes(out)


def bgzf_block(data: bytes, level: int = 6) -> bytes:
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    cdata = comp.compress(data) + comp.flush()
    head = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
    return head + struct.pack("<H", len(cdata) + 25) + cdata + \
        struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data))


def bgzf(data: bytes, block: int, eof: bool = True) -> bytes:
    parts = [bgzf_block(data[i:i + block]) for i in range(0, len(data), block)]
    return b"".join(parts) + (bgzf_block(b"") if eof else b"")


@dataclass
class FuzzFile:
    text: bytes  # the decompressed bytes the parser is given, as far as they are known
    raw: bytes  # the file's bytes
    container: str
    framing_damaged: bool


@st.composite
def fuzz_file(draw: st.DrawFn) -> FuzzFile:
    text, _n = draw(vcf_text())
    data = text.encode("utf-8")
    if draw(st.integers(0, 3)) == 0:  # a quarter damaged byte-wise
        data = draw(damaged(data))
    container = draw(st.sampled_from(["plain", "bgzf", "bgzf", "gzip"]))
    if container == "plain":
        return FuzzFile(data, data, container, False)
    if container == "gzip":
        return FuzzFile(data, gzip.compress(data), container, False)
    raw = bgzf(data, draw(st.sampled_from([7, 50, 300, 65280])), eof=draw(st.integers(0, 5)) > 0)
    hurt = draw(st.integers(0, 5)) == 0
    if hurt:
        raw = draw(damaged(raw, max_edits=2))
    return FuzzFile(data, raw, container, hurt)
