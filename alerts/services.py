"""TEMPORARY placeholder until the alerts stage lands (replaced by the alerts work)."""
from sensors.records import ScoredReading


def alerts_evaluate_scored(*, scored: list[ScoredReading]) -> int:
    raise NotImplementedError("alerts stage not wired yet")
