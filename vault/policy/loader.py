"""Loading policy files: YAML -> JSON Schema -> typed specs -> Cedar -> immutable Policy.

``load_policy(path)`` takes one file or a directory (its ``*.yaml``/``*.yml`` files, not
recursive, in name order, merged). Every problem is reported with file, line and JSON path.
With ``strict`` (the default) the semantic errors of :func:`vault.policy.lint.lint` refuse
the load too (k below the floor, a role named twice, a registered tier without DP, ...).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from vault.errors import ConfigError
from vault.policy import cedar
from vault.policy.duo import DuoError, Use, make_consent, make_use
from vault.policy.model import (
    OPERATIONS,
    STATISTICS,
    DPParams,
    PresenceControl,
    RareVariant,
    RateLimit,
)
from vault.policy.spec import (
    DEFAULT_K,
    DEFAULT_MAX_VARIANTS,
    DEFAULT_MIN_GROUP_SIZE,
    DatasetSpec,
    Finding,
    IssuerSpec,
    PassportSpec,
    Policy,
    PrincipalRule,
    RoleSpec,
    VisaRequirement,
    VisaRule,
)

#: the largest JWKS file read for a trusted issuer
MAX_JWKS_BYTES = 1 << 20


class PolicyLoadError(ConfigError):
    """A policy file is unreadable, breaks the schema, or is unsafe; nothing was loaded."""

    def __init__(self, problems: list[str] | list[Finding]) -> None:
        self.problems = [str(p) for p in problems]
        self.findings = [p for p in problems if isinstance(p, Finding)]
        super().__init__("policy not loaded:\n  " + "\n  ".join(self.problems))


def json_schema() -> dict[str, Any]:
    text = (resources.files("policies") / "access" / "policy.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def policy_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix in (".yaml", ".yml"))
        if not files:
            raise PolicyLoadError([f"{path}: no *.yaml policy files in this directory"])
        return files
    if path.is_file():
        return [path]
    raise PolicyLoadError([f"{path}: no such policy file or directory"])


def _lines(node: yaml.Node, here: tuple[Any, ...], out: dict[tuple[Any, ...], int],
           dups: list[str], file: str) -> None:
    """Map each JSON path to its YAML line; record keys given twice (YAML keeps the last)."""
    out[here] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            k = key.value
            if k in seen:
                dups.append(f"{file}:{key.start_mark.line + 1}: {_json_path((*here, k))}: "
                            f"key {k!r} is given twice")
            seen.add(k)
            _lines(value, (*here, k), out, dups, file)
            out[(*here, k)] = key.start_mark.line + 1  # the key's line, not its value's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*here, i), out, dups, file)


def _json_path(parts: tuple[Any, ...]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _read(file: Path, validator: jsonschema.Draft202012Validator
          ) -> tuple[dict[str, Any], dict[tuple[Any, ...], int], list[str]]:
    name = str(file)
    try:
        text = file.read_text("utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, {}, [f"{name}: cannot read policy file: {exc}"]
    lines: dict[tuple[Any, ...], int] = {}
    problems: list[str] = []
    if node is not None:
        _lines(node, (), lines, problems, name)
    if data is None:
        data = {}
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        parts = tuple(err.absolute_path)
        line = next((lines[parts[:i]] for i in range(len(parts), -1, -1)
                     if parts[:i] in lines), None)
        where = f"{name}:{line}" if line else name
        problems.append(f"{where}: {_json_path(parts)}: {err.message}")
    return (data if isinstance(data, dict) else {}), lines, problems


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_policy(path: str | Path, *, strict: bool = True) -> Policy:
    """The policy in ``path`` (a file or a directory); PolicyLoadError naming every problem."""
    from vault.policy.lint import lint

    root = Path(path)
    files = policy_files(root)
    validator = jsonschema.Draft202012Validator(json_schema())
    problems: list[str] = []
    docs: list[tuple[str, dict[str, Any], dict[tuple[Any, ...], int]]] = []
    digest = hashlib.sha256()
    digest.update(b"genovault-policy-v1\0")
    for f in files:
        data, lines, errs = _read(f, validator)
        problems += errs
        docs.append((str(f), data, lines))
        digest.update(f.name.encode() + b"\0" + canonical(data) + b"\0")
    schema_src = cedar.schema_text()
    digest.update(b"cedarschema\0" + schema_src.encode() + b"\0")
    if problems:
        raise PolicyLoadError(problems)

    datasets: dict[str, DatasetSpec] = {}
    raw_roles: list[tuple[str, dict[str, Any], str, int | None]] = []
    rules: list[PrincipalRule] = []
    issuers: dict[str, IssuerSpec] = {}
    visa_rules: list[VisaRule] = []
    audience: tuple[str, str] | None = None
    for name, data, lines in docs:
        pp = data.get("passports") or {}
        if "audience" in pp:
            if audience is not None:
                problems.append(f"{name}:{lines.get(('passports', 'audience'), '?')}: "
                                f"$.passports.audience: already set in {audience[1]}")
            else:
                audience = (pp["audience"], name)
        for iss_id, spec in (pp.get("issuers") or {}).items():
            where = f"{name}:{lines.get(('passports', 'issuers', iss_id), '?')}"
            if iss_id in issuers:
                problems.append(f"{where}: $.passports.issuers.{iss_id}: issuer {iss_id!r} "
                                f"is already defined in {issuers[iss_id].source}")
                continue
            same = next((i for i in issuers.values() if i.iss == spec["iss"]), None)
            if same is not None:
                # one iss, two configurations: which keys, jku and rights apply to its
                # tokens would depend on the order the files were read
                problems.append(f"{where}: $.passports.issuers.{iss_id}.iss: iss "
                                f"{spec['iss']!r} is already the iss of issuer {same.id!r} "
                                f"({same.source}); give each iss once (one issuer may "
                                "list several signs)")
                continue
            try:
                issuers[iss_id] = _issuer(iss_id, spec, Path(name), where)
            except ValueError as exc:
                problems.append(f"{where}: $.passports.issuers.{iss_id}.jwks: {exc}")
                continue
            if issuers[iss_id].jwks is not None:
                digest.update(b"jwks\0" + iss_id.encode() + b"\0"
                              + canonical(issuers[iss_id].jwks) + b"\0")
        for i, rule in enumerate(pp.get("visas") or []):
            where = f"{name}:{lines.get(('passports', 'visas', i), '?')}"
            try:
                visa_rules.append(_visa_rule(len(visa_rules), rule, where,
                                             f"$.passports.visas[{i}]"))
            except DuoError as exc:
                problems.append(f"{where}: $.passports.visas[{i}].use: {exc}")
    for name, data, lines in docs:
        for ds_id, ds in (data.get("datasets") or {}).items():
            where = f"{name}:{lines.get(('datasets', ds_id), '?')}: $.datasets.{ds_id}"
            if ds_id in datasets:
                problems.append(f"{where}: dataset {ds_id!r} is already defined in "
                                f"{datasets[ds_id].source}")
                continue
            try:
                datasets[ds_id] = _dataset(ds_id, ds, f"{name}:{lines.get(('datasets', ds_id))}")
            except DuoError as exc:
                problems.append(f"{where}.consent: {exc}")
        for role_id, role in (data.get("roles") or {}).items():
            raw_roles.append((role_id, role, name, lines.get(("roles", role_id))))
        for i, rule in enumerate(data.get("principals") or []):
            line = lines.get(("principals", i))
            rules.append(PrincipalRule(len(rules), MappingProxyType(dict(rule["match"])),
                                       rule["role"], f"{name}:{line}", f"$.principals[{i}]"))
    roles: dict[str, RoleSpec] = {}
    for role_id, role, name, line in raw_roles:
        where = f"{name}:{line}: $.roles.{role_id}"
        if role_id in roles:
            problems.append(f"{where}: role {role_id!r} is already defined in "
                            f"{roles[role_id].source}")
            continue
        try:
            roles[role_id] = _role(role_id, role, tuple(datasets), f"{name}:{line}",
                                   f"$.roles.{role_id}")
        except DuoError as exc:
            problems.append(f"{where}.use: {exc}")
    if problems:
        raise PolicyLoadError(problems)

    text, rule_info = cedar.render(datasets, roles)
    try:
        policy_set = cedar.compile_policies(text)
    except ValueError as exc:
        raise PolicyLoadError([f"{root}: {exc}"]) from exc
    policy = Policy(
        datasets=MappingProxyType(datasets),
        roles=MappingProxyType(roles),
        principals=tuple(rules),
        version=digest.hexdigest(),
        files=tuple(str(f) for f in files),
        cedar_text=text,
        cedar_policies=policy_set,
        cedar_schema=cedar.load_schema(),
        rules=MappingProxyType(rule_info),
        passports=PassportSpec(MappingProxyType(issuers), tuple(visa_rules),
                               audience[0] if audience else None),
    )
    if strict:
        errors = [f for f in lint(policy) if f.severity == "error"]
        if errors:
            raise PolicyLoadError(errors)
    return policy


def _dataset(ds_id: str, ds: Mapping[str, Any], source: str) -> DatasetSpec:
    c = ds["consent"]
    consent = make_consent(c["permission"], c.get("disease"), c.get("disease_label"),
                           tuple(c.get("modifiers", ())))
    cols = ds.get("group_columns")
    columns = None if cols is None else MappingProxyType(
        {k: (None if v is None else tuple(v)) for k, v in cols.items()})
    return DatasetSpec(ds_id, consent, ds.get("description", ""), ds.get("tier"), columns,
                       source)


def _use(use: Any) -> Use | None:
    if isinstance(use, str):
        code, _, disease = use.partition("@")
        return make_use(code, disease or None)
    if use is not None:
        return make_use(use["code"], use.get("disease"), tuple(use.get("attests", ())))
    return None


def _loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


def _issuer(iss_id: str, spec: Mapping[str, Any], file: Path, where: str) -> IssuerSpec:
    """A trusted issuer; its JWKS file is read now (a URL is read when a visa needs it)."""
    import urllib.parse

    src = str(spec["jwks"])
    url = urllib.parse.urlsplit(src)
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    if url.scheme in ("https", "http"):
        if url.scheme == "http" and not _loopback(url.hostname):
            raise ValueError(f"{src!r}: a JWKS URL must be https:// (http:// only on loopback)")
        jwks_url = src
    elif url.scheme and len(url.scheme) > 1:
        raise ValueError(f"{src!r}: give a JWKS file path or an https:// URL")
    else:
        path = Path(src).expanduser()
        if not path.is_absolute():
            path = file.parent / path
        try:
            if path.stat().st_size > MAX_JWKS_BYTES:
                raise ValueError(f"{path}: a JWKS file over {MAX_JWKS_BYTES} bytes")
            jwks = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the JWKS file {path}: {exc}") from None
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys:
            raise ValueError(f"{path}: not a JWKS (an object with a non-empty \"keys\" list)")
        for k in keys:
            if not isinstance(k, dict) or any(p in k for p in ("d", "p", "q", "dp", "dq",
                                                                 "qi", "k")):
                raise ValueError(f"{path}: a JWKS of trusted issuers holds public keys only "
                                 "(this one has private or symmetric key material)")
    return IssuerSpec(iss_id, str(spec["iss"]), jwks, jwks_url, tuple(spec.get("jku", ())),
                      tuple(spec.get("signs", ("visas",))), where)


def _visa_rule(index: int, rule: Mapping[str, Any], source: str, json_path: str) -> VisaRule:
    need = tuple(VisaRequirement(type=r["type"], issuer=r["issuer"], value=r.get("value"),
                                 source=r.get("source"),
                                 by=tuple(r.get("by", ("dac", "so", "system"))))
                 for r in rule["require"])
    ds = rule.get("datasets")
    return VisaRule(index, need, rule["role"], None if ds is None else tuple(ds),
                    _use(rule.get("use")), rule.get("description", ""), source, json_path)


def _role(role_id: str, r: Mapping[str, Any], all_datasets: tuple[str, ...], source: str,
          json_path: str) -> RoleSpec:
    ds = r.get("datasets", [])
    stats = r.get("statistics", [])
    use_spec = _use(r.get("use"))
    rare = r.get("rare_variant", {})
    rate = r.get("rate_limit")
    dp = r.get("dp")
    return RoleSpec(
        id=role_id,
        datasets=all_datasets if ds == "*" else tuple(ds),
        all_datasets=ds == "*",
        statistics=STATISTICS if stats == "*" else tuple(s for s in STATISTICS if s in stats),
        actions=tuple(a for a in OPERATIONS if a in r.get("actions", [])),
        use=use_spec,
        group_by=tuple(r.get("group_by", [])),
        filters=tuple(r.get("filters", [])),
        k=int(r.get("k", DEFAULT_K)),
        min_group_size=int(r.get("min_group_size", DEFAULT_MIN_GROUP_SIZE)),
        rare_variant=RareVariant(**rare),
        rate_limit=RateLimit(**rate) if rate else RateLimit(),
        max_variants=int(r.get("max_variants", DEFAULT_MAX_VARIANTS)),
        max_region_bp=r.get("max_region_bp"),
        dp=_dp_params(dp) if dp else None,
        tier=r.get("tier"),
        description=r.get("description", ""),
        source=source,
        json_path=json_path,
    )


def _dp_params(dp: Mapping[str, Any]) -> DPParams:
    pres = dp.get("presence")
    return DPParams(**{**dp, "presence": PresenceControl(**pres) if pres else None})


class PolicyStore:
    """Holds the current Policy; :meth:`reload` swaps in a new one atomically, or keeps the
    old one and returns the error if the new files do not load."""

    def __init__(self, path: str | Path, *, strict: bool = True) -> None:
        self.path = Path(path)
        self._strict = strict
        self._lock = threading.Lock()
        self._policy = load_policy(self.path, strict=strict)

    def current(self) -> Policy:
        return self._policy

    def watch(self, every_s: float = 2.0,
              on_error: Callable[[PolicyLoadError], None] | None = None) -> WatchedPolicyStore:
        """This store, reloading by itself when a policy file changes (checked at most every
        ``every_s`` seconds, on the next ``current()``)."""
        return WatchedPolicyStore(self, every_s, on_error)

    def stamp(self) -> tuple[tuple[str, int, int], ...]:
        files = [self.path] if self.path.is_file() else sorted(
            [*self.path.glob("*.yaml"), *self.path.glob("*.yml")])
        out = []
        for f in files:
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload(self) -> PolicyLoadError | None:
        """Load the files again; None on success, else the error (the old policy stays)."""
        with self._lock:
            try:
                new = load_policy(self.path, strict=self._strict)
            except PolicyLoadError as exc:
                return exc
            self._policy = new
            return None


class WatchedPolicyStore:
    """A PolicyStore that reloads when its files change; a bad edit keeps the old policy
    (and is reported through ``on_error``), so a typo never opens or closes access."""

    def __init__(self, store: PolicyStore, every_s: float,
                 on_error: Callable[[PolicyLoadError], None] | None) -> None:
        self.store = store
        self.path = store.path
        self._every = every_s
        self._on_error = on_error
        self._stamp = store.stamp()
        self._next = time.monotonic() + every_s
        self._lock = threading.Lock()
        self.last_error: PolicyLoadError | None = None

    def current(self) -> Policy:
        now = time.monotonic()
        if now >= self._next and self._lock.acquire(blocking=False):
            try:
                self._next = now + self._every
                stamp = self.store.stamp()
                if stamp != self._stamp:
                    self._stamp = stamp
                    self.last_error = self.store.reload()
                    if self.last_error is not None and self._on_error is not None:
                        self._on_error(self.last_error)
            finally:
                self._lock.release()
        return self.store.current()

    def reload(self) -> PolicyLoadError | None:
        self._stamp = self.store.stamp()
        self.last_error = self.store.reload()
        return self.last_error
