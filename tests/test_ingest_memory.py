"""vault.ingest.memory: the collector is kept off old objects only for the block."""

from __future__ import annotations

import gc

import pytest

from vault.ingest.memory import collector_on_new_objects


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_collector_on_new_objects__freezes_for_the_block_only(unfrozen):
    assert gc.get_freeze_count() == 0
    with collector_on_new_objects():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_collector_on_new_objects__unfreezes_after_a_failure(unfrozen):
    with pytest.raises(RuntimeError), collector_on_new_objects():
        raise RuntimeError("ingest failed")
    assert gc.get_freeze_count() == 0


def test_collector_on_new_objects__leaves_a_process_that_froze_itself_frozen(unfrozen):
    gc.freeze()
    frozen = gc.get_freeze_count()
    with collector_on_new_objects():
        pass
    # still frozen (an unfreeze empties the permanent generation); a few frozen objects may
    # have been freed meanwhile by other threads of the test process
    assert frozen > 0 and gc.get_freeze_count() > frozen // 2


def test_collector_on_new_objects__new_cycles_are_still_collected(unfrozen):
    with collector_on_new_objects():
        a: list[object] = []
        a.append(a)
        del a
        assert gc.collect() >= 1
