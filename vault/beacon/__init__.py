"""GA4GH Beacon v2: request parsing and response documents (routes: vault/api/routes/beacon.py).

Answers are computed by the query service under the guard's policy decision and disclosure
control; this package only translates between Beacon's documents and those answers.
"""
