"""Plain records passed between pipeline stages (ingest -> store -> score -> alert).

They are frozen dataclasses with slots: cheap to build by the thousand on
the consumer's hot path, and free of ORM state.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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

    id: int
    sensor_pk: int
    sensor_id: str
    timestamp: datetime
    rainfall: float | None
    soil_moisture: float | None
    ground_movement: float | None
    water_level: float | None


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
