"""Pausing Python's cyclic garbage collector around allocation-heavy work."""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector for the duration of the block.

    Parsing and compiling a large workspace allocates tens of thousands of containers
    (the JSON dicts and lists, the modifier records), none of them in reference cycles.
    Each allocation burst makes the collector scan the young objects, and then the whole
    heap, again and again: about a quarter of the load time of a 3 MB workspace. Reference
    counting still frees everything as usual; only the cycle search waits until the block
    ends. The collector is re-enabled only if it was enabled on entry, so nested uses and
    callers that disabled it themselves are respected. Usable as a decorator.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
