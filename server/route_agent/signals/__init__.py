"""Signals: the explicit, inspectable facts a risk score is built from."""

from __future__ import annotations

from route_agent.signals.changeset import ChangedFile, ChangeSet
from route_agent.signals.compute import Evidence, RaisedSignal, Signals, TestFailures, compute_signals
from route_agent.signals.paths import PathMatcher
from route_agent.signals.taint import CleanText, clean_tainted

__all__ = [
    "ChangeSet",
    "ChangedFile",
    "CleanText",
    "Evidence",
    "PathMatcher",
    "RaisedSignal",
    "Signals",
    "TestFailures",
    "clean_tainted",
    "compute_signals",
]
