"""Per-line error codes of the VCF record parser and their messages (0 = fine)."""

from __future__ import annotations

# Error codes per line (0 = fine). Messages are filled in with the offending column.
E_OK = 0
E_FIELDS = 1
E_POS = 2
E_REF = 3
E_ALT = 4
E_QUAL = 5
E_NO_GT = 6
E_GT = 7
E_PLOIDY = 8
E_ALLELE = 9
E_FEW_SAMPLES = 10
E_MANY_SAMPLES = 11
E_EMPTY = 12
E_CHROM = 13
E_CHROM_COLON = 14
E_LONG_LINE = 15
E_FORMAT_VALUES = 16
E_MANY_ALTS = 17
E_TRAILING_TAB = 18
E_FORMAT_TWICE = 19
E_ALT_IS_REF = 20

#: ALT alleles of one record at most: allele_index and n_alleles are int16 (docs/format.md)
MAX_ALTS = 32767

ERRORS: dict[int, tuple[str, str]] = {
    # code: (reason key used in QC counts, message)
    E_FIELDS: ("too_few_columns", "fewer than 8 tab-separated columns (or FORMAT missing while "
                                  "the header declares samples)"),
    E_POS: ("bad_pos", "POS is not a non-negative integer (of at most 63 bits)"),
    E_REF: ("bad_ref", "REF must be one or more of A, C, G, T, N"),
    E_ALT: ("bad_alt", "ALT is not '.' or a comma-separated list of: bases (A, C, G, T, N), "
                       "'*', a symbolic <ID> (no whitespace, ',', '<' or '>' inside) or a "
                       "breakend (t[p[, t]p], ]p]t, [p[t with p = chrom:pos; .t or t.)"),
    E_ALT_IS_REF: ("alt_is_ref", "an ALT allele is the REF allele itself (ALT lists "
                                 "non-reference alleles, VCF 4.3 §1.6.1; a genotype of it "
                                 "would be counted as a variant)"),
    E_QUAL: ("bad_qual", "QUAL must be '.' or a non-negative number"),
    E_NO_GT: ("gt_not_first", "GT is in FORMAT but not its first key (VCF requires GT "
                              "first)"),
    E_GT: ("bad_gt", "malformed GT value"),
    E_PLOIDY: ("ploidy_gt_2", "ploidy > 2 is not supported (GT has more than two alleles)"),
    E_ALLELE: ("allele_out_of_range", "GT refers to an allele index larger than the number "
                                      "of ALT alleles"),
    E_FORMAT_TWICE: ("format_key_twice", "a FORMAT key is listed twice (each key has one "
                                         "value per sample; htslib mis-reads such a line)"),
    E_FORMAT_VALUES: ("too_many_format_values", "a sample column has more ':'-separated "
                                                "values than FORMAT has keys"),
    E_MANY_ALTS: ("too_many_alts", f"more than {MAX_ALTS:,} ALT alleles (GenoVault stores "
                                   "allele_index and n_alleles as 16-bit integers)"),
    E_FEW_SAMPLES: ("too_few_samples", "fewer sample columns than the header declares"),
    E_MANY_SAMPLES: ("too_many_samples", "more sample columns than the header declares"),
    E_EMPTY: ("empty_field", "an empty column (two adjacent tabs)"),
    # VCF 4.3 §1.6: a data line has exactly the header's columns, none empty; htslib drops a
    # trailing tab silently, GenoVault refuses it like any other empty column
    E_TRAILING_TAB: ("trailing_tab", "the line ends with a tab (an empty column after the "
                                     "last one the header declares): remove trailing tabs, "
                                     "e.g. `sed 's/\\t*$//'`"),
    E_CHROM: ("bad_chrom", "CHROM is not a valid contig name: VCF 4.3 allows only "
                           "[0-9A-Za-z!#$%&+./:;?@^_|~-] then also '*' and '=' (no whitespace, "
                           "control characters, commas, quotes or brackets), or such a name "
                           "in angle brackets (<ID>)"),
    E_CHROM_COLON: ("chrom_with_colon", "CHROM contains ':' which VCF allows but GenoVault "
                                        "reserves for its regions (CHROM:START-END would be "
                                        "ambiguous); rename the contig, e.g. with "
                                        "`bcftools annotate --rename-chrs`"),
    E_LONG_LINE: ("line_too_long", "data line longer than GenoVault's limit of 1 MiB + 1 KiB "
                                   "per sample (docs/format.md, Limits): a missing newline or "
                                   "a malformed file"),
}
