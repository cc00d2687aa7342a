"""The audit trail: an append-only, hash-chained JSON Lines log of every request.

Records who asked what, the decision and its reasons, the policy version and the disclosure
applied -- never genotypes, sample ids, pseudonyms or tokens.
"""
