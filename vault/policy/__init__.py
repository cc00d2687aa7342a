"""Access decisions: ``decide(principal, request, policy) -> Decision``, a pure function.

No I/O, no Vault, no disk: it reads policy objects that the caller loaded, and never raises on a
denial. Routes and commands never decide access themselves; they call this package.
"""
