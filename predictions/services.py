"""TEMPORARY placeholder until the predictions stage lands (replaced by the predictions work)."""
from sensors.records import ScoredReading, StoredReading


def predictions_score_stored(*, stored: list[StoredReading]) -> list[ScoredReading]:
    raise NotImplementedError("predictions stage not wired yet")
