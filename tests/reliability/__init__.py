"""Reliability: load, faults (process kill, Vault sealed/restarted/slow), hostile HTTP."""
