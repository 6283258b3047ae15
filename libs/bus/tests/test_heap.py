import gc
import weakref

from bus.heap import FROZEN_OBJECTS, freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only a collection frees it


def test_start_up_garbage_is_freed_and_the_rest_leaves_the_collectors_sight() -> None:
    garbage = Node()
    collected = weakref.ref(garbage)
    del garbage
    try:
        freeze_startup_heap()
        assert collected() is None  # freed, not frozen forever
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert FROZEN_OBJECTS._value.get() == frozen
    finally:
        gc.unfreeze()
