"""Plain records passed between pipeline stages (ingest -> store -> score -> alert).

They are frozen dataclasses with slots: cheap to build by the thousand on
the consumer's hot path, and free of ORM state.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

MEASUREMENTS = ("rainfall", "soil_moisture", "ground_movement", "water_level")


@dataclass(frozen=True, slots=True)
class ReadingIn:
    """A validated reading on its way into the store (from the API or a Kafka message)."""

    sensor_id: str
    timestamp: datetime
    received_at: datetime
    rainfall: float | None = None
    soil_moisture: float | None = None
    ground_movement: float | None = None
    water_level: float | None = None


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading that this batch inserted for the first time (re-deliveries are not included)."""

    id: int | None  # None where the pipeline did not ask for it (``StoredColumns``)
    sensor_pk: int
    sensor_id: str
    timestamp: datetime
    rainfall: float | None
    soil_moisture: float | None
    ground_movement: float | None
    water_level: float | None


UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_unix_us(when: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact, unlike ``timestamp()``)."""
    return (when - UNIX_EPOCH) // MICROSECOND


class StoredColumns(Sequence):
    """Newly stored readings held column-wise; a ``StoredReading`` is built only for an item someone reads.

    Why: the consumer's overlapped pipeline (``sensors.pipeline``) knows a
    batch's new readings as arrays before PostgreSQL has inserted them;
    scoring works on the arrays, and alerting looks at the few readings that
    can change an alert, so building 20,000 objects per batch would be work
    for nothing. Items are in (sensor, timestamp) order, like the insert's
    result; their ``id`` is None (the insert does not return ids).
    """

    __slots__ = ("sensor_pks", "us", "values", "codes")

    def __init__(self, *, sensor_pks: np.ndarray, us: np.ndarray, values: np.ndarray, codes: Mapping[int, str]):
        self.sensor_pks = sensor_pks  # int64
        self.us = us  # int64, µs since the Unix epoch
        self.values = values  # float64 (len(MEASUREMENTS), n), NaN = missing
        self.codes = codes  # sensor pk -> sensor code

    def __len__(self) -> int:
        return len(self.us)

    def __getitem__(self, i: int) -> StoredReading:
        if not isinstance(i, int | np.integer):
            raise TypeError("StoredColumns items are read one at a time")
        pk = int(self.sensor_pks[i])
        values = (None if v != v else v for v in self.values[:, i].tolist())  # NaN -> None
        return StoredReading(None, pk, self.codes[pk], UNIX_EPOCH + timedelta(microseconds=int(self.us[i])), *values)


@dataclass(frozen=True, slots=True)
class ScoredReading:
    """A stored reading with the models' verdict and the features they saw."""

    reading: StoredReading
    landslide_probability: float
    flood_probability: float
    landslide_risk: str
    flood_risk: str
    landslide_model_version: str
    flood_model_version: str
    features: dict[str, float | None]
