"""Presence with a per-member information budget (registered tier, a policy option).

**What it is.** An ex-post (realized-loss) accounting in the spirit of Raisaro et al. 2017
("a per-principal information budget") and of individual privacy filters (Ebadi et al.
2015, personalized DP; Feldman & Zrnic 2021): every presence answer a principal gets is
charged, per *member* of the dataset, with the information it actually revealed about
that member, and a member whose budget would be overrun is left out of every later
presence answer to that principal. It is **not** a worst-case ε-DP guarantee: the bound is
on the realized log-likelihood ratio of the answers a principal saw, member by member.

**The draw.** One discrete Laplace (two-sided geometric) value Z per (principal, dataset
version, variant), from OpenDP (``make_laplace`` on an integer atom domain), on a count
over the members still included, ``AC_eff``: with ``count: alleles`` the variant's alt
allele count (a hom-alt carrier counts 2), with ``count: carriers`` the number of carriers
(samples with at least one alt allele; every carrier counts 1):

    exists = AC_eff + Z >= T,   T = k + ceil(margin_sd * sd(Z)),   else null.

Counting carriers halves what one hom-alt member can move the count, so its worst-case
loss per answer is 1/s instead of 2/s: with a member budget below 2/s an allele count
excludes every hom-alt carrier at its first answer (away from the threshold the less
likely answer costs a member with c copies exactly c/s), a carrier count does not.

With α = e^(−1/s) (s the noise scale), P(Z = z) = (1 − α)/(1 + α) · α^|z|, and the tail has
the closed form  P(Z >= m) = α^m / (1 + α) for m >= 1,  1 − α^(1−m) / (1 + α) for m <= 0;
sd(Z) = sqrt(2α) / (1 − α).

**The loss.** A member carrying c copies (1 het, 2 hom-alt; 1 for every carrier when
counting carriers) moves AC by c; the answer y
tells the principal ``|ln P(y | AC_eff) − ln P(y | AC_eff − c)|`` nats about that member's
presence (the log-likelihood ratio of "in" vs "out", the rest fixed). Non-carriers (hom-ref
or a missing call) do not move AC: they lose nothing. Before an answer is drawn, every
included carrier whose accumulated loss plus the *worst* loss this answer could cost
(max over y) would exceed the member budget B is excluded (iterated: an exclusion changes
AC_eff); excluded members are left out of AC_eff of this and every later presence answer
to the principal (they look absent). So the realized loss of every member stays <= B, and
the likelihood ratio an attacker can build for one member from the answers stays
<= e^B (B = 0.35, the demo's registered tier: at most 1.42, hence power <= ~1.42 × FPR;
B = ln 2: at most 2).

Everything here is pure (numpy over the carriers of one variant) so the service
(vault.privacy.ledger.Ledger.presence) and the benchmark's in-process model
(benchmarks/privacy.py) run the very same code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONTROL = "member_information"
#: what AC_eff counts: alt alleles (hom-alt = 2) or carriers (every carrier = 1)
COUNTS = ("alleles", "carriers")
#: tolerance on sums of losses (nats)
_TOL = 1e-12


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def log_tail(m: int, alpha: float) -> float:
    """ln P(Z >= m) for the two-sided geometric with parameter ``alpha`` = e^(−1/s)."""
    la = math.log(alpha)
    if m >= 1:
        return m * la - math.log1p(alpha)
    return math.log1p(-math.exp((1 - m) * la - math.log1p(alpha)))


def log_answer(yes: bool, ac: int, threshold: int, alpha: float) -> float:
    """ln P(answer | AC = ac): yes iff ac + Z >= T, i.e. Z >= T − ac; no iff Z <= T − ac − 1,
    which by symmetry is Z >= ac − T + 1."""
    return log_tail(threshold - ac, alpha) if yes else log_tail(ac - threshold + 1, alpha)


@functools.lru_cache(maxsize=1 << 16)
def realized_loss(yes: bool, ac: int, copies: int, threshold: int, alpha: float) -> float:
    """Nats answer ``yes`` reveals about a member with ``copies`` alt alleles in AC = ac."""
    return abs(log_answer(yes, ac, threshold, alpha)
               - log_answer(yes, ac - copies, threshold, alpha))


@functools.lru_cache(maxsize=1 << 16)
def worst_loss(ac: int, copies: int, threshold: int, alpha: float) -> float:
    """The larger of the two answers' losses (never more than copies / s)."""
    return max(realized_loss(True, ac, copies, threshold, alpha),
               realized_loss(False, ac, copies, threshold, alpha))


@dataclass(frozen=True)
class PresenceParams:
    """The policy's ``dp.presence``: member budget B (nats), noise scale s, margin, and
    what is counted (``alleles`` or ``carriers``)."""

    member_budget: float
    scale: float
    margin_sd: float = 2.0
    count: str = "alleles"

    def __post_init__(self) -> None:
        if not self.member_budget > 0:  # (math.inf: no budget, for measurements only)
            raise ValueError("member_budget_nats must be > 0")
        if not self.scale > 0:
            raise ValueError("noise_scale must be > 0")
        if not self.margin_sd >= 0:
            raise ValueError("margin_sd must be >= 0")
        if self.count not in COUNTS:
            raise ValueError(f"count must be one of {', '.join(COUNTS)}")

    @property
    def alpha(self) -> float:
        return math.exp(-1.0 / self.scale)

    def sd(self) -> float:
        a = self.alpha
        return math.sqrt(2 * a) / (1 - a)

    def threshold(self, k: int) -> int:
        return int(k + math.ceil(self.margin_sd * self.sd()))

    def summary(self, k: int) -> dict[str, Any]:
        return {"presence_control": CONTROL, "presence_noise": "discrete_laplace",
                "presence_noise_scale": self.scale, "presence_threshold": self.threshold(k),
                "presence_count": self.count, "member_budget_nats": self.member_budget,
                "presence_epsilon": 0.0}

    def rules(self, k: int) -> list[str]:
        t = self.threshold(k)
        what = ("number of carriers (samples with at least one alt allele)"
                if self.count == "carriers" else "alt allele count")
        return [f"exists is true when the variant's {what} plus discrete Laplace "
                f"noise (OpenDP, scale {self.scale:g}) is at least {t} (k plus "
                f"{self.margin_sd:g} sd of the noise); otherwise null, the same for absent, "
                "rare and not assessed",
                "presence is paid from a per-member information budget of "
                f"{self.member_budget:g} nats per principal (realized-loss accounting, not a "
                "worst-case ε guarantee): a member whose budget would be overrun is left out "
                "of this and every later presence answer to you; presence spends no ε",
                "the same question gets the same answer at no cost"]


class PresenceNoise:
    """OpenDP's discrete Laplace at ``scale``: one integer, or many at once."""

    def __init__(self, scale: float) -> None:
        dp = _dp()
        self.scale = float(scale)
        self._one = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int),
                                      self.scale)
        self._many = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)),
                                       dp.l1_distance(T=int), self.scale)

    def draw(self) -> int:
        return int(self._one(0))

    def draws(self, n: int) -> np.ndarray:
        return np.asarray(self._many([0] * int(n)), np.int64) if n > 0 else \
            np.zeros(0, np.int64)


@dataclass(frozen=True)
class Step:
    """One presence answer: what it said and what it did to the carriers' budgets."""

    exists: bool
    ac_eff: int
    noise: int
    included: np.ndarray  # bool (carriers,): counted in AC_eff and charged
    charge: np.ndarray  # float (carriers,): nats charged (0 for the excluded)
    newly_excluded: np.ndarray  # bool (carriers,): excluded by this answer


def answer(copies: np.ndarray, loss: np.ndarray, excluded: np.ndarray, params: PresenceParams,
           threshold: int, draw: Callable[[], int]) -> Step:
    """The presence answer over one variant's carriers.

    ``copies`` (int, carriers,): alt alleles of each carrier (1 or 2; counted as 1 when
    ``params.count`` is ``carriers``); ``loss`` (float): each carrier's accumulated loss
    with this principal; ``excluded`` (bool): carriers already excluded. ``draw()`` gives
    the noise (called once, after the exclusions)."""
    copies = np.asarray(copies, np.int64)
    if params.count == "carriers":
        copies = np.minimum(copies, 1)
    loss = np.asarray(loss, np.float64)
    excluded = np.asarray(excluded, np.bool_)
    alpha = params.alpha
    budget = params.member_budget
    inc = ~excluded
    two = copies >= 2
    any_two = bool(two.any())
    while True:
        ac = int(copies[inc].sum())
        w1 = worst_loss(ac, 1, threshold, alpha)
        w = np.where(two, worst_loss(ac, 2, threshold, alpha), w1) if any_two else w1
        over = inc & (loss + w > budget + _TOL)
        if not over.any():
            break
        inc &= ~over
    z = int(draw())
    yes = ac + z >= threshold
    l1 = realized_loss(yes, ac, 1, threshold, alpha)
    per = np.where(two, realized_loss(yes, ac, 2, threshold, alpha), l1) if any_two else l1
    charge = np.where(inc, per, 0.0)
    return Step(bool(yes), ac, z, inc, charge, ~inc & ~excluded)


@dataclass
class MemberState:
    """One principal's presence state over a cohort, in memory (the benchmark's model of
    the ledger's tables): losses, exclusions, and the answers already given."""

    n_members: int
    params: PresenceParams
    threshold: int
    loss: np.ndarray = field(init=False)
    excluded: np.ndarray = field(init=False)
    answers: dict[Any, bool] = field(default_factory=dict)
    #: member -> number of (new) answers given when it was excluded
    excluded_at: dict[int, int] = field(default_factory=dict)
    #: (variant, AC_eff, noise, exists) of every new answer, in order
    log: list[tuple[Any, int, int, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loss = np.zeros(self.n_members, np.float64)
        self.excluded = np.zeros(self.n_members, np.bool_)

    def ask(self, variant: Any, members: np.ndarray, copies: np.ndarray,
            draw: Callable[[], int]) -> bool:
        if variant in self.answers:
            return self.answers[variant]
        members = np.asarray(members, np.int64)
        st = answer(copies, self.loss[members], self.excluded[members], self.params,
                    self.threshold, draw)
        self.loss[members] += st.charge
        newly = members[st.newly_excluded]
        self.excluded[newly] = True
        for m in newly.tolist():
            self.excluded_at[int(m)] = len(self.log)
        self.answers[variant] = st.exists
        self.log.append((variant, st.ac_eff, st.noise, st.exists))
        return st.exists


def carriers_of(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Member indices and alt copies of the carriers in one variant's genotype codes
    (0 hom-ref, 1 het, 2 hom-alt, 3 missing: missing calls count as non-carriers)."""
    c = np.asarray(codes)
    idx = np.flatnonzero((c == 1) | (c == 2))
    return idx.astype(np.int64), c[idx].astype(np.int64)


def unpack_row(packed_row: np.ndarray, n_samples: int) -> np.ndarray:
    """One variant's 2-bit codes (four samples per byte, first sample in the low bits)."""
    b = np.asarray(packed_row, np.uint8)
    shifts = np.array([0, 2, 4, 6], np.uint8)
    return ((b[:, None] >> shifts) & np.uint8(3)).reshape(-1)[:n_samples]
