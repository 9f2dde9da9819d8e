"""Fixtures for fault-injection tests: consumer subprocesses, fresh topics, and a record of the counts.

Every test here records what it sent, what was acknowledged and what was
stored in ``test-artifacts/reliability.json`` (one entry per test, merged
across runs) so docs/reliability.md can quote the last run's figures.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.kafka_utils import ROOT

ARTIFACT = ROOT / "test-artifacts" / "reliability.json"



def write_counts(test_name: str, counts: dict, *, path: Path = ARTIFACT) -> None:
    """Merge one test's counts into the artifact file and print them (visible with ``-s``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    load1, load5, _ = os.getloadavg()
    data[test_name] = {**counts, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": [round(load1, 2), round(load5, 2)]}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n[reliability] {test_name}: {json.dumps(counts, sort_keys=True)}")


@pytest.fixture
def record_counts(request):
    """record_counts(sent=..., acknowledged=..., stored=..., duplicates=...) for this test."""

    def _record(**counts) -> None:
        write_counts(request.node.name, counts)

    return _record
