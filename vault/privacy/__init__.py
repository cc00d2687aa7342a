"""Disclosure control: small-cell suppression, rounding, differential-privacy noise, budgets.

The rules that decide what of an aggregate may be released live here, and only here (the
store and ingest never suppress anything on their own).
"""
