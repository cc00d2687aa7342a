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

ERRORS: dict[int, tuple[str, str]] = {
    # code: (reason key used in QC counts, message)
    E_FIELDS: ("too_few_columns", "fewer than 8 tab-separated columns (or FORMAT missing while "
                                  "the header declares samples)"),
    E_POS: ("bad_pos", "POS is not a non-negative integer"),
    E_REF: ("bad_ref", "REF must be one or more of A, C, G, T, N"),
    E_ALT: ("bad_alt", "ALT is not '.', a comma-separated list of bases/'*', a symbolic "
                       "<ALLELE> or a breakend"),
    E_QUAL: ("bad_qual", "QUAL is neither '.' nor a number"),
    E_NO_GT: ("gt_not_first", "GT is in FORMAT but not its first key (VCF requires GT "
                              "first)"),
    E_GT: ("bad_gt", "malformed GT value"),
    E_PLOIDY: ("ploidy_gt_2", "ploidy > 2 is not supported (GT has more than two alleles)"),
    E_ALLELE: ("allele_out_of_range", "GT refers to an allele index larger than the number "
                                      "of ALT alleles"),
    E_FEW_SAMPLES: ("too_few_samples", "fewer sample columns than the header declares"),
    E_MANY_SAMPLES: ("too_many_samples", "more sample columns than the header declares"),
    E_EMPTY: ("empty_field", "an empty column (two adjacent tabs)"),
}
