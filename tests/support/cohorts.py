"""msprime cohorts for tests (the simulator lives in benchmarks/cohort.py, a non-test module)."""

from benchmarks.cohort import simulate_cohort

__all__ = ["simulate_cohort"]
