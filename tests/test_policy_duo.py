"""DUO matching, row by row as in docs/policy.md."""

from __future__ import annotations

import pytest

from vault.policy.duo import DuoError, make_consent, make_use, match_consent

CANCER = "MONDO:0004992"
DIABETES = "MONDO:0005015"

# (dataset permission, disease, role use, use disease, allowed)
PERMISSION_ROWS = [
    ("NRES", None, "GRU", None, True),
    ("NRES", None, "HMB", None, True),
    ("NRES", None, "DS", CANCER, True),
    ("NRES", None, "POA", None, True),
    ("GRU", None, "GRU", None, True),
    ("GRU", None, "HMB", None, True),
    ("GRU", None, "DS", CANCER, True),
    ("GRU", None, "POA", None, True),
    ("HMB", None, "GRU", None, False),
    ("HMB", None, "HMB", None, True),
    ("HMB", None, "DS", CANCER, True),
    ("HMB", None, "POA", None, False),
    ("DS", CANCER, "GRU", None, False),
    ("DS", CANCER, "HMB", None, False),
    ("DS", CANCER, "DS", CANCER, True),
    ("DS", CANCER, "DS", DIABETES, False),
    ("DS", CANCER, "POA", None, False),
    ("POA", None, "GRU", None, False),
    ("POA", None, "HMB", None, False),
    ("POA", None, "DS", CANCER, False),
    ("POA", None, "POA", None, True),
]


@pytest.mark.parametrize(
    ("permission", "disease", "use", "use_disease", "allowed"),
    [pytest.param(*row, id=f"{row[0]}-{row[2]}{'-same' if row[3] == row[1] and row[3] else ''}"
                  f"{'-other' if row[3] and row[1] and row[3] != row[1] else ''}")
     for row in PERMISSION_ROWS],
)
def test_duo__permission_table(permission: str, disease: str | None, use: str,
                               use_disease: str | None, allowed: bool) -> None:
    consent = make_consent(permission, disease)
    m = match_consent(consent, make_use(use, use_disease))
    assert m.ok is allowed
    assert m.reason == ("consent_ok" if allowed else f"consent_mismatch:{consent.label()}")


# (modifier on the dataset, role use, attested modifiers, allowed)
MODIFIER_ROWS = [
    pytest.param("NPU", "HMB", (), False, id="NPU-unattested"),
    pytest.param("NPU", "HMB", ("NPU",), True, id="NPU-attested"),
    pytest.param("NCU", "HMB", (), False, id="NCU-unattested"),
    pytest.param("NCU", "HMB", ("DUO:0000046",), True, id="NCU-attested-by-id"),
    pytest.param("NPUNCU", "HMB", ("NPU",), False, id="NPUNCU-only-NPU"),
    pytest.param("NPUNCU", "HMB", ("NPU", "NCU"), True, id="NPUNCU-by-NPU-and-NCU"),
    pytest.param("NPUNCU", "HMB", ("NPUNCU",), True, id="NPUNCU-attested"),
    pytest.param("IRB", "HMB", (), False, id="IRB-unattested"),
    pytest.param("IRB", "HMB", ("IRB",), True, id="IRB-attested"),
    pytest.param("PUB", "HMB", (), False, id="PUB-unattested"),
    pytest.param("US", "HMB", ("US",), True, id="US-attested"),
    pytest.param("GSO", "HMB", (), True, id="GSO-always-genetic"),
    pytest.param("CC", "HMB", (), True, id="CC-widens-only"),
    pytest.param("NPOA", "HMB", (), True, id="NPOA-non-ancestry-use"),
    pytest.param("NPOA", "POA", ("NPOA",), False, id="NPOA-ancestry-use"),
    # GRU is "any research purpose", ancestry research included (DUO:0000042's comment):
    # it meets NPOA only when the role attests that its members do none
    pytest.param("NPOA", "GRU", (), False, id="NPOA-GRU-unattested"),
    pytest.param("NPOA", "GRU", ("NPOA",), True, id="NPOA-GRU-attested"),
    pytest.param("NPOA", "DS", (), True, id="NPOA-DS-excludes-ancestry"),
    pytest.param("NMDS", "GRU", (), False, id="NMDS-GRU-unattested"),
    pytest.param("RS", "HMB", (), False, id="RS-unattested"),
    pytest.param("GS", "HMB", ("GS",), True, id="GS-attested"),
]


@pytest.mark.parametrize(("modifier", "use", "attests", "allowed"), MODIFIER_ROWS)
def test_duo__modifier_table(modifier: str, use: str, attests: tuple[str, ...],
                             allowed: bool) -> None:
    consent = make_consent("GRU", modifiers=(modifier,))
    m = match_consent(consent, make_use(use, CANCER if use == "DS" else None, attests=attests))
    assert m.ok is allowed, m.explanation
    if not allowed:
        assert m.reason.startswith("consent_modifier_unmet:")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: make_consent("NCU"), "modifier", id="modifier-as-permission"),
        pytest.param(lambda: make_consent("DS"), "disease", id="DS-without-disease"),
        pytest.param(lambda: make_consent("HMB", "MONDO:1"), "only DS", id="disease-not-DS"),
        pytest.param(lambda: make_consent("XYZ"), "unknown DUO", id="unknown-code"),
        pytest.param(lambda: make_use("NRES"), "not a research use", id="NRES-as-use"),
        pytest.param(lambda: make_use("HMB", attests=("GRU",)), "permission", id="attest-perm"),
    ],
)
def test_duo__bad_codes_refused(call, message: str) -> None:
    with pytest.raises(DuoError, match=message):
        call()


def test_duo__ds_label_uses_disease_label() -> None:
    c = make_consent("DUO:0000007", CANCER, "cancer")
    assert c.label() == "DS-CANCER"
    assert make_consent("DS", CANCER).label() == f"DS-{CANCER}"


@pytest.mark.parametrize(("consent_disease", "use_disease"), [
    pytest.param(CANCER, "MONDO:0007254", id="subclass-of-consent"),   # breast cancer
    pytest.param("MONDO:0007254", CANCER, id="superclass-of-consent"),
    pytest.param(CANCER, CANCER.lower(), id="not-the-same-text"),
])
def test_duo__ds_without_ontology_refuses_every_other_disease(consent_disease: str,
                                                              use_disease: str) -> None:
    """No MONDO offline: a DS use matches a DS consent only for the same disease id, and
    every other disease (a subclass included) is refused, never allowed."""
    m = match_consent(make_consent("DS", consent_disease), make_use("DS", use_disease))
    assert m.ok is False and m.reason.startswith("consent_mismatch:DS-")
    # and a role's DS use cannot be widened to another disease by a request either
    from vault.policy.duo import permits
    assert not permits("DS", consent_disease, make_use("DS", use_disease))


def test_duo__npoa_refusal_of_gru_says_how_to_meet_it() -> None:
    m = match_consent(make_consent("GRU", modifiers=("NPOA",)), make_use("GRU"))
    assert (m.ok, m.reason) == (False, "consent_modifier_unmet:NPOA")
    assert "HMB" in m.explanation
    # an HMB use by the same role meets it
    assert match_consent(make_consent("GRU", modifiers=("NPOA",)), make_use("HMB")).ok


def test_duo__terms_not_in_duo_are_refused() -> None:
    """NCTRL (an old ORSP "no control set" restriction) is not a DUO term (duo.csv)."""
    with pytest.raises(DuoError, match="unknown DUO"):
        make_consent("GRU", modifiers=("NCTRL",))
