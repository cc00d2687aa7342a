"""GA4GH Data Use Ontology (DUO) matching: may a use be made of data under a consent?

Terms are those of EBISPOT/DUO (81f5c3d); the matching rules are GenoVault's, written out
row by row in docs/policy.md and tested row by row in tests/test_policy_duo.py:

* The dataset's *permission* (NRES, GRU, HMB, DS(disease), POA) must permit the *use*
  (GRU, HMB, DS(disease), POA): see :data:`PERMITS`.
* Every *modifier* on the dataset must be met. Two are decided from the use itself
  (GSO: GenoVault only serves genotype statistics, so every use is a genetic study; NPOA: met
  by HMB and DS uses, which exclude ancestry research by definition, never by POA, and by GRU
  only when the role attests NPOA: GRU is any research purpose, ancestry research included);
  CC widens the consent and restricts nothing. Every other modifier
  (NPU, NCU, NPUNCU, IRB, PUB, COL, RTN, MOR, NMDS, US, IS, PS, GS, TS, RS) is a condition
  about the requester that GenoVault cannot observe, so it is met only if the role *attests*
  it (the data access committee's word about the role's members). NPUNCU is also met by
  attesting both NPU and NCU, and NPU and NCU each by attesting NPUNCU.
"""

from __future__ import annotations

from dataclasses import dataclass

#: id -> (shorthand, kind, label), from duo.csv.
TERMS: dict[str, tuple[str, str, str]] = {
    "DUO:0000004": ("NRES", "permission", "no restriction"),
    "DUO:0000042": ("GRU", "permission", "general research use"),
    "DUO:0000006": ("HMB", "permission", "health or medical or biomedical research"),
    "DUO:0000007": ("DS", "permission", "disease specific research"),
    "DUO:0000011": ("POA", "permission", "population origins or ancestry research only"),
    "DUO:0000021": ("IRB", "modifier", "ethics approval required"),
    "DUO:0000019": ("PUB", "modifier", "publication required"),
    "DUO:0000026": ("US", "modifier", "user specific restriction"),
    "DUO:0000044": ("NPOA", "modifier", "population origins or ancestry research prohibited"),
    "DUO:0000020": ("COL", "modifier", "collaboration required"),
    "DUO:0000046": ("NCU", "modifier", "non-commercial use only"),
    "DUO:0000018": ("NPUNCU", "modifier", "not for profit, non commercial use only"),
    "DUO:0000012": ("RS", "modifier", "research specific restrictions"),
    "DUO:0000025": ("TS", "modifier", "time limit on use"),
    "DUO:0000045": ("NPU", "modifier", "not for profit organisation use only"),
    "DUO:0000024": ("MOR", "modifier", "publication moratorium"),
    "DUO:0000016": ("GSO", "modifier", "genetic studies only"),
    "DUO:0000029": ("RTN", "modifier", "return to database or resource"),
    "DUO:0000043": ("CC", "modifier", "clinical care use"),
    "DUO:0000015": ("NMDS", "modifier", "no general methods research"),
    "DUO:0000028": ("IS", "modifier", "institution specific restriction"),
    "DUO:0000022": ("GS", "modifier", "geographical restriction"),
    "DUO:0000027": ("PS", "modifier", "project specific restriction"),
}
BY_SHORTHAND: dict[str, str] = {short: code for code, (short, _, _) in TERMS.items()}

#: Uses a role or a request may declare (NRES is a consent, not a purpose).
USES = ("GRU", "HMB", "DS", "POA")
#: Dataset permission -> the uses it permits (DS only for the same disease).
PERMITS: dict[str, tuple[str, ...]] = {
    "NRES": ("GRU", "HMB", "DS", "POA"),
    "GRU": ("GRU", "HMB", "DS", "POA"),
    "HMB": ("HMB", "DS"),
    "DS": ("DS",),
    "POA": ("POA",),
}
#: The ontology's own hierarchy among these terms (duo.owl ``rdfs:subClassOf``): HMB is a
#: GRU, DS an HMB; NPU and NCU are NPUNCU. (Every permission is a DUO:0000001 "data use
#: permission", every modifier a DUO:0000017 "data use modifier"; those roots are no consent.)
PARENT: dict[str, str] = {
    "DUO:0000006": "DUO:0000042",  # HMB < GRU
    "DUO:0000007": "DUO:0000006",  # DS < HMB
    "DUO:0000045": "DUO:0000018",  # NPU < NPUNCU
    "DUO:0000046": "DUO:0000018",  # NCU < NPUNCU
}


def descendants(code: str) -> frozenset[str]:
    """``code`` and every term below it in DUO's hierarchy (:data:`PARENT`): what an
    ontology filter with ``includeDescendantTerms`` (Beacon's default) matches."""
    root = normalize(code)
    out = {root}
    for term in TERMS:
        t: str | None = term
        while t is not None:
            if t == root:
                out.add(term)
                break
            t = PARENT.get(t)
    return frozenset(out)


#: Modifiers decided without an attestation.
COMPUTED_MODIFIERS = ("GSO", "NPOA", "CC")


class DuoError(ValueError):
    """A DUO code is unknown or used in the wrong place (a modifier as a permission, ...)."""


def normalize(code: str) -> str:
    """The DUO id of ``code`` (an id or a shorthand); DuoError if it is not a DUO term."""
    if code in TERMS:
        return code
    if code in BY_SHORTHAND:
        return BY_SHORTHAND[code]
    raise DuoError(f"unknown DUO code {code!r}: use an id like DUO:0000042 or a shorthand "
                   f"like GRU ({', '.join(sorted(BY_SHORTHAND))})")


def shorthand(code: str) -> str:
    return TERMS[normalize(code)][0]


def kind(code: str) -> str:
    return TERMS[normalize(code)][1]


@dataclass(frozen=True)
class Use:
    """A purpose: a DUO permission code (GRU, HMB, DS, POA), a disease for DS, and the
    modifiers the user attests."""

    code: str
    disease: str | None = None
    attests: frozenset[str] = frozenset()

    @property
    def short(self) -> str:
        return shorthand(self.code)

    def label(self) -> str:
        return f"DS({self.disease})" if self.short == "DS" else self.short


def make_use(code: str, disease: str | None = None, attests: tuple[str, ...] = ()) -> Use:
    """A validated Use; DuoError if the code is not a use or DS lacks a disease."""
    cid = normalize(code)
    if shorthand(cid) not in USES:
        raise DuoError(f"{code!r} is not a research use: a use is one of {', '.join(USES)}")
    if shorthand(cid) == "DS" and not disease:
        raise DuoError("a DS (DUO:0000007) use needs a disease, e.g. DS@MONDO:0004992")
    if shorthand(cid) != "DS" and disease:
        raise DuoError(f"only DS takes a disease, not {shorthand(cid)}")
    mods = frozenset(normalize(a) for a in attests)
    for m in mods:
        if kind(m) != "modifier":
            raise DuoError(f"{m} ({shorthand(m)}) is a permission, not a modifier to attest")
    return Use(cid, disease, mods)


def parse_use(text: str) -> Use:
    """``HMB``, ``DUO:0000006`` or ``DS@MONDO:0004992`` as a Use (no attestations)."""
    code, _, disease = text.partition("@")
    return make_use(code, disease or None)


@dataclass(frozen=True)
class Consent:
    """A dataset's consent: one DUO permission, its disease for DS, and modifiers."""

    permission: str
    disease: str | None = None
    disease_label: str | None = None
    modifiers: tuple[str, ...] = ()

    def label(self) -> str:
        short = shorthand(self.permission)
        if short == "DS":
            return "DS-" + (self.disease_label or self.disease or "?").upper()
        return short


def make_consent(permission: str, disease: str | None = None,
                 disease_label: str | None = None,
                 modifiers: tuple[str, ...] = ()) -> Consent:
    pid = normalize(permission)
    if kind(pid) != "permission":
        raise DuoError(f"{permission!r} ({shorthand(pid)}) is a modifier, not a data use "
                       "permission (NRES, GRU, HMB, DS, POA)")
    if shorthand(pid) == "DS" and not disease:
        raise DuoError("consent DS (DUO:0000007) needs a disease, e.g. MONDO:0004992")
    if shorthand(pid) != "DS" and disease:
        raise DuoError(f"only DS takes a disease, not {shorthand(pid)}")
    mods = tuple(normalize(m) for m in modifiers)
    for m in mods:
        if kind(m) != "modifier":
            raise DuoError(f"{m} ({shorthand(m)}) is a permission, not a modifier")
    return Consent(pid, disease, disease_label, mods)


@dataclass(frozen=True)
class DuoMatch:
    """Whether a use fits a consent (or a grant), with a code and a sentence saying why."""

    ok: bool
    reason: str
    explanation: str


def permits(grant_code: str, grant_disease: str | None, use: Use) -> bool:
    """Does the permission ``grant_code`` (with disease for DS) permit ``use``?"""
    grant = shorthand(grant_code)
    if use.short not in PERMITS[grant]:
        return False
    if grant == "DS":
        return use.disease == grant_disease
    return True


def match_consent(consent: Consent, use: Use) -> DuoMatch:
    """Whether data under ``consent`` may be used for ``use``."""
    grant = shorthand(consent.permission)
    if not permits(consent.permission, consent.disease, use):
        if grant == "DS" and use.short == "DS":
            why = (f"dataset consent DS is for disease {consent.disease}, the use is for "
                   f"{use.disease}")
        else:
            allowed = ", ".join(PERMITS[grant])
            why = f"dataset consent {grant} permits uses {allowed}; the use is {use.short}"
        return DuoMatch(False, f"consent_mismatch:{consent.label()}", why)
    for mod in consent.modifiers:
        short = shorthand(mod)
        if short in ("GSO", "CC"):
            continue
        if short == "NPOA":
            # HMB (and DS, its subclass) exclude ancestry research by definition; GRU is
            # "any research purpose", which DUO says includes "the study of population
            # origins or ancestry": it meets NPOA only when the role attests NPOA (its
            # members do no ancestry research); POA never does
            if use.short == "POA" or (use.short == "GRU" and mod not in use.attests):
                return DuoMatch(False, "consent_modifier_unmet:NPOA",
                                "dataset forbids population origins/ancestry research (NPOA)"
                                + ("; a GRU use includes it (DUO:0000042) unless the role "
                                   "attests NPOA, or asks for an HMB or DS use"
                                   if use.short == "GRU" else ""))
            continue
        if short == "NPUNCU" and {BY_SHORTHAND["NPU"], BY_SHORTHAND["NCU"]} <= use.attests:
            continue
        # NPUNCU is NPU and NCU together (duo.csv): attesting it attests each of them
        if short in ("NPU", "NCU") and BY_SHORTHAND["NPUNCU"] in use.attests:
            continue
        if mod not in use.attests:
            return DuoMatch(False, f"consent_modifier_unmet:{short}",
                            f"dataset requires {short} ({TERMS[mod][2]}), which the role does "
                            "not attest")
    mods = "".join(f"+{shorthand(m)}" for m in consent.modifiers)
    return DuoMatch(True, "consent_ok",
                    f"dataset consent {consent.label()}{mods} permits use {use.label()}")
