"""The kernels package: every public name resolves, the costly ones on first use."""

from __future__ import annotations

import subprocess
import sys

import kernels


def test_every_public_name_resolves_to_what_its_module_defines() -> None:
    import importlib

    for name in kernels.__all__:
        value = getattr(kernels, name)
        assert not isinstance(value, type(kernels)), f"kernels.{name} is a module"
        module = getattr(value, "__module__", None)
        if module and module.startswith("kernels."):
            assert getattr(importlib.import_module(module), name) is value


def test_variant_stats_stays_the_function_after_its_module_is_imported() -> None:
    import kernels.variant_stats  # noqa: F401 - the submodule of the same name
    from kernels import variant_stats

    assert callable(variant_stats)


def test_the_store_format_does_not_load_the_test_kernels() -> None:
    """The store's format needs kernels.codes; the CLI must not pay for the association and
    regression kernels' imports at start-up."""
    code = ("import sys, vault.store.format; "
            "print(sorted(m for m in ('kernels.association', 'kernels.logistic', 'kernels.ld') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
