"""Presence under the per-member information budget (vault.privacy.presence): the tail's
closed form, OpenDP's sampler, the loss, exclusion, reuse, threads, and the policy option."""

from __future__ import annotations

import math
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from vault.policy.loader import PolicyLoadError, load_policy
from vault.privacy import presence as pr
from vault.privacy.ledger import Ledger

B = math.log(2)


def _pmf(z: int, alpha: float) -> float:
    return (1 - alpha) / (1 + alpha) * alpha ** abs(z)


@pytest.mark.parametrize("scale", [0.5, 1.0, 4.0, 9.0])
def test_log_tail__equals_the_brute_force_sum(scale: float) -> None:
    alpha = math.exp(-1 / scale)
    span = int(60 * scale) + 60
    for m in range(-25, 26):
        brute = sum(_pmf(z, alpha) for z in range(m, span))
        assert math.exp(pr.log_tail(m, alpha)) == pytest.approx(brute, rel=1e-9, abs=1e-300)
    # and the sd of the closed form
    var = sum(z * z * _pmf(z, alpha) for z in range(-span, span))
    assert pr.PresenceParams(B, scale).sd() == pytest.approx(math.sqrt(var), rel=1e-9)


def test_opendp_sampler__has_the_closed_form_distribution() -> None:
    scale = 4.0
    alpha = math.exp(-1 / scale)
    z = pr.PresenceNoise(scale).draws(40_000)
    assert abs(z.mean()) < 0.15  # sd ~5.6: 4 standard errors of the mean
    for v in range(-6, 7):
        p = _pmf(v, alpha)
        se = math.sqrt(p * (1 - p) / z.size)
        assert abs((z == v).mean() - p) < 4.5 * se, v
    for m in (-5, 0, 3, 10):
        p = math.exp(pr.log_tail(m, alpha))
        se = math.sqrt(p * (1 - p) / z.size)
        assert abs((z >= m).mean() - p) < 4.5 * se, m
    one = {pr.PresenceNoise(scale).draw() for _ in range(200)}
    assert len(one) > 5  # the scalar draw is noise too


def test_realized_loss__is_the_log_likelihood_ratio_and_bounded_by_copies_over_scale() -> None:
    p = pr.PresenceParams(B, 4.0)
    t, alpha = p.threshold(11), p.alpha
    assert t == 11 + math.ceil(2 * p.sd()) == 23
    span = 2000

    def prob(yes: bool, ac: int) -> float:  # brute force over the noise
        return sum(_pmf(z, alpha) for z in range(-span, span) if (ac + z >= t) == yes)

    for ac in (2, 15, 22, 23, 24, 30, 60):
        for c in (1, 2):
            for yes in (True, False):
                want = abs(math.log(prob(yes, ac)) - math.log(prob(yes, ac - c)))
                got = pr.realized_loss(yes, ac, c, t, alpha)
                assert got == pytest.approx(want, rel=1e-6, abs=1e-12)
                assert got <= c / p.scale + 1e-12
            assert pr.worst_loss(ac, c, t, alpha) == pytest.approx(c / p.scale)
    # far from the threshold the likely answer reveals almost nothing
    assert pr.realized_loss(True, 300, 1, t, alpha) < 1e-20
    assert pr.realized_loss(False, 0, 1, t, alpha) < 1e-3


def _draws(values: list[int]):  # a fixed noise sequence (tests of the bookkeeping only)
    it = iter(values)
    return lambda: next(it)


def test_answer__excludes_carriers_that_would_overrun_their_budget() -> None:
    p = pr.PresenceParams(B, 4.0)
    t = p.threshold(11)
    copies = np.array([1, 1, 2, 1, 1] + [1] * 20)
    loss = np.zeros(copies.size)
    loss[0] = B - 0.2  # + 0.25 worst case: over
    loss[1] = B - 0.3  # + 0.25: fits
    loss[2] = 0.3  # hom-alt: + 0.5 is over
    excluded = np.zeros(copies.size, bool)
    excluded[3] = True  # already out
    st = pr.answer(copies, loss, excluded, p, t, _draws([0]))
    assert st.included.tolist()[:5] == [False, True, False, False, True]
    assert st.newly_excluded.tolist()[:5] == [True, False, True, False, False]
    assert st.ac_eff == int(copies[st.included].sum()) == 22
    assert st.exists is False and st.noise == 0  # 22 + 0 < 23
    want = pr.realized_loss(False, 22, 1, t, p.alpha)
    assert st.charge[st.included] == pytest.approx(want)
    assert (st.charge[~st.included] == 0).all()
    assert (loss + st.charge <= B + 1e-12).all()


def test_answer__iterates_when_an_exclusion_moves_the_count() -> None:
    # two carriers at the threshold: dropping one moves AC_eff, which changes the other's
    # worst case; a budget of exactly one worst-case het answer lets the second stay
    p = pr.PresenceParams(0.25, 4.0)
    t = 3
    st = pr.answer(np.array([2, 1, 1, 1]), np.array([0.0, 0.0, 0.0, 0.0]),
                   np.zeros(4, bool), p, t, _draws([5]))
    assert st.included.tolist() == [False, True, True, True]  # 0.5 > 0.25: out
    assert st.ac_eff == 3 and st.exists is True


def test_answer__counting_carriers_charges_a_hom_alt_member_like_a_het_one() -> None:
    # the same carriers as above: counting alleles the hom-alt member (0.3 spent) would be
    # out (worst case 0.5 > B - 0.3); counting carriers it moves the count by 1 like the
    # others, so it stays in, is charged what a het carrier is, and AC_eff counts carriers
    p = pr.PresenceParams(B, 4.0, count="carriers")
    t = p.threshold(11)
    copies = np.array([1, 1, 2, 1, 1] + [1] * 20)
    loss = np.zeros(copies.size)
    loss[2] = 0.3
    st = pr.answer(copies, loss, np.zeros(copies.size, bool), p, t, _draws([-1]))
    assert st.included.all() and not st.newly_excluded.any()
    assert st.ac_eff == copies.size == 25  # not 26: the hom-alt member counts once
    assert st.exists is True  # 25 - 1 >= 23
    want = pr.realized_loss(True, 25, 1, t, p.alpha)
    assert st.charge == pytest.approx(np.full(copies.size, want))
    alleles = pr.answer(copies, loss, np.zeros(copies.size, bool), pr.PresenceParams(B, 4.0),
                        t, _draws([-1]))
    assert alleles.newly_excluded.tolist() == [False, False, True] + [False] * 22
    assert alleles.ac_eff == 24  # 26 alleles less the excluded member's two
    # the worst case per answer, over every count: 1/s for a carrier, 2/s for a hom-alt
    # member's two alleles
    assert max(pr.worst_loss(ac, 1, t, p.alpha) for ac in range(1, 80)) <= 1 / 4 + 1e-12
    assert max(pr.worst_loss(ac, 2, t, p.alpha) for ac in range(2, 80)) > 1 / 4 + 0.2


def test_params__count_is_reported_and_checked() -> None:
    p = pr.PresenceParams(0.35, 4.0, count="carriers")
    assert p.summary(11)["presence_count"] == "carriers"
    assert "number of carriers" in p.rules(11)[0]
    assert "alt allele count" in pr.PresenceParams(B, 4.0).rules(11)[0]
    with pytest.raises(ValueError, match="count"):
        pr.PresenceParams(B, 4.0, count="genotypes")


def test_member_state__excluded_members_look_absent_and_answers_are_reused() -> None:
    p = pr.PresenceParams(B, 4.0)
    t = p.threshold(11)
    s = pr.MemberState(30, p, t)
    members = np.arange(24)
    copies = np.ones(24, np.int64)
    calls = []

    def draw() -> int:
        calls.append(1)
        return 0

    # AC 24 at T 23: every answer is at the threshold and costs ~0.25 per carrier
    answers = [s.ask(("v", i), members, copies, draw) for i in range(6)]
    assert answers[0] is True
    assert s.excluded[:24].all() and not s.excluded[24:].any()
    assert (s.loss <= B + 1e-12).all() and s.loss.max() > B - 0.25
    assert answers[-1] is False  # everyone excluded: AC_eff 0
    assert s.log[-1][1] == 0
    n = len(calls)
    assert s.ask(("v", 0), members, copies, draw) is True  # the stored answer, no draw
    assert len(calls) == n
    assert set(s.excluded_at) == set(range(24))


def test_unpack_row__reads_the_packed_codes() -> None:
    from kernels.codes import packed_bytes

    codes = np.array([0, 1, 2, 3, 1, 1, 0, 2, 3], np.uint8)
    packed = np.zeros(packed_bytes(codes.size), np.uint8)
    for i, c in enumerate(codes.tolist()):
        packed[i // 4] |= np.uint8(c << (2 * (i % 4)))
    assert pr.unpack_row(packed, codes.size).tolist() == codes.tolist()
    idx, cp = pr.carriers_of(pr.unpack_row(packed, codes.size))
    assert idx.tolist() == [1, 2, 4, 5, 7] and cp.tolist() == [1, 2, 1, 1, 2]


# -- the ledger ----------------------------------------------------------------------------
def _ask(ledger: Ledger, principal: str, variant: str, n: int = 31, draw=None) -> bool:
    p = pr.PresenceParams(B, 4.0)
    rel = ledger.presence(principal, "v1", variant, np.arange(n), np.ones(n, np.int64), p,
                          23, draw or pr.PresenceNoise(4.0).draw, query_id=f"q-{variant}")
    return rel.exists


def test_ledger_presence__reuses_the_stored_answer_per_principal(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.db")
    first = _ask(led, "p", "1:10:A:G|presence", draw=_draws([9]))
    assert first is True  # 31 + 9 >= 23
    again = led.presence("p", "v1", "1:10:A:G|presence", np.arange(31), np.ones(31, np.int64),
                         pr.PresenceParams(B, 4.0), 23, _draws([]))  # no draw allowed
    assert again.exists is True and again.reused
    other = _ask(led, "q", "1:10:A:G|presence", draw=_draws([-30]))
    assert other is False  # another principal: its own draw
    use = led.presence_usage()
    assert use["p"]["presence_answers"] == 1 and use["q"]["presence_answers"] == 1


def test_ledger_presence__threads_never_overspend_a_member(tmp_path: Path) -> None:
    """16 threads ask 48 distinct variants, each carried by the same 31 members at AC 31
    near the threshold 23: every answer costs each included carrier up to 0.25 nats. The
    members' stored losses must be exactly the sum of the charges of the answers they were
    in (no lost update), and at most B."""
    led = Ledger(tmp_path / "l.db")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(3):
                _ask(led, "p", f"1:{100 + t * 3 + i}:A:G|presence")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    import sqlite3

    con = sqlite3.connect(led.path)
    rows = con.execute("SELECT answer, ac_eff FROM presence_answers WHERE principal = 'p' "
                       "ORDER BY id").fetchall()
    losses = con.execute("SELECT loss, excluded FROM member_loss WHERE principal = 'p'"
                         ).fetchall()
    con.close()
    assert len(rows) == 48
    alpha = math.exp(-1 / 4.0)
    # all 31 carriers have the same history, so AC_eff is 31 while they are in, then 0
    charged = sum(pr.realized_loss(bool(a), ac, 1, 23, alpha) for a, ac in rows if ac == 31)
    assert {ac for _, ac in rows} <= {0, 31} and any(ac == 0 for _, ac in rows)
    assert len(losses) == 31
    for lo, ex in losses:
        assert lo == pytest.approx(charged, abs=1e-9)
        assert lo <= B + 1e-9 and ex == 1


# -- the policy option ---------------------------------------------------------------------
POLICIES = Path(__file__).resolve().parents[2] / "benchmarks" / "privacy_policies"


def _policy_with(tmp_path: Path, presence: str) -> Path:
    d = tmp_path / "pol"
    d.mkdir(parents=True)
    shutil.copy(POLICIES / "dataset.yaml", d / "dataset.yaml")
    text = (POLICIES / "default.yaml").read_text()
    old = "      presence: {control: member_information, member_budget_nats: 0.35, " \
          "noise_scale: 4, count: carriers}"
    assert old in text
    (d / "default.yaml").write_text(text.replace(old, f"      presence: {presence}"
                                                 if presence else ""))
    return d


def test_policy__presence_option_loads(tmp_path: Path) -> None:
    pol = load_policy(_policy_with(tmp_path, "{control: member_information, "
                                   "member_budget_nats: 0.5, noise_scale: 6, margin_sd: 1.5}"))
    dp = pol.roles["attack-default"].dp
    assert dp is not None and dp.presence is not None
    assert (dp.presence.member_budget_nats, dp.presence.noise_scale,
            dp.presence.margin_sd) == (0.5, 6, 1.5)
    assert dp.presence.count == "alleles"  # the default
    carriers = load_policy(_policy_with(tmp_path / "c", "{control: member_information, "
                                        "member_budget_nats: 0.35, noise_scale: 4, "
                                        "count: carriers}"))
    assert carriers.roles["attack-default"].dp.presence.count == "carriers"  # type: ignore[union-attr]
    plain = load_policy(_policy_with(tmp_path / "b", ""))
    assert plain.roles["attack-default"].dp.presence is None  # type: ignore[union-attr]


@pytest.mark.parametrize(("presence", "message"), [
    ("{control: member_information, member_budget_nats: 0, noise_scale: 4}",
     "member_budget_nats"),
    ("{control: member_information, member_budget_nats: -1, noise_scale: 4}",
     "member_budget_nats"),
    ("{control: member_information, member_budget_nats: 0.69, noise_scale: 0}",
     "noise_scale"),
    ("{control: epsilon, member_budget_nats: 0.69, noise_scale: 4}", "control"),
    ("{control: member_information, member_budget_nats: 0.69}", "noise_scale"),
    ("{control: member_information, member_budget_nats: 0.69, noise_scale: 4, extra: 1}",
     "extra"),
    ("{control: member_information, member_budget_nats: big, noise_scale: 4}",
     "member_budget_nats"),
    ("{control: member_information, member_budget_nats: 0.35, noise_scale: 4, "
     "count: genotypes}", "count"),
])
def test_policy__bad_presence_options_are_refused_with_the_field(tmp_path: Path, presence: str,
                                                                 message: str) -> None:
    with pytest.raises(PolicyLoadError) as err:
        load_policy(_policy_with(tmp_path, presence))
    text = str(err.value)
    assert "presence" in text and message in text, text


def test_ledger_usage__lists_presence_use_as_aggregates(tmp_path: Path) -> None:
    """What `genovault budget show` lists (its decision, suppression and audit record:
    tests/test_budget_cli.py, with OpenBao): counts per principal, no per-member state."""
    import json

    led = Ledger(tmp_path / "l.db")
    for i in range(6):  # "no" at AC 31 costs each carrier 0.25: out after two answers
        _ask(led, "presence-only", f"1:{i + 1}:A:G|presence", draw=_draws([-20]))
    (row,) = led.usage(30)
    assert row["principal"] == "presence-only" and row["epsilon_total"] == 0.0
    assert row["presence_answers"] == 6 and row["members_excluded"] == 31
    assert set(row) >= {"presence_answers", "members_excluded"}
    assert "loss" not in json.dumps(row)  # no per-member state, only counts
