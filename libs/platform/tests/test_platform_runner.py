import gc

from flowchat_platform.runner import GC_THRESHOLDS, tune_gc


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()
    start_up: object = object.__new__(type("StartUp", (), {}))  # something built at start-up
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert not any(o is start_up for o in gc.get_objects())  # out of every collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
