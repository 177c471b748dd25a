"""Shared pytest configuration: hypothesis settings profiles.

``deterministic`` (the default) derandomises hypothesis and turns off its example database,
so every run of the suite draws the same examples and a CI failure reproduces locally.
Set ``NEXTSTAT_HYPOTHESIS_PROFILE=nondeterministic`` to explore with fresh random examples
(and hypothesis' database, so a failure found that way is replayed on the next run).
"""

from __future__ import annotations

import os

from hypothesis import settings

# No deadline in either profile: the suite runs on shared 2-core machines where a single
# example can be slowed by other processes; the tests check values, not timings.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None)
settings.register_profile("nondeterministic", derandomize=False, deadline=None)
settings.load_profile(os.environ.get("NEXTSTAT_HYPOTHESIS_PROFILE", "deterministic"))
