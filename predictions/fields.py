"""The feature snapshot of a prediction: a fixed vector in ``FEATURE_NAMES`` order, read as a dict.

Why not JSON: every stored reading gets a Prediction row, so the snapshot is
written ~20,000 times a second at the consumer's target rate. As ``jsonb``
PostgreSQL parsed each ~400-byte object on insert (~12 µs a row, the
largest single cost of the scoring stage) and stored ~700 bytes a row with
its keys; as ``real[]`` a row is 16 float32 values sent in binary (one
array per batch, bench/bench_consumer.py --stages) and takes a third of the
space. The values are float32 already: that is what the models are fed.

In Python the field reads and writes ``{feature name: float | None}`` (None =
missing, as the features define it), exactly the shape the JSON had, so
callers, the admin and the API are unchanged. Values read back print as
their shortest float32 form (``0.1``, not ``0.10000000149011612``).
The order is the model contract's (``predictions.features.FEATURE_NAMES``);
changing the feature list needs a data migration of this column.

Storage: ``real[]`` (NULL elements for missing values) on PostgreSQL; the
JSON text of the list on other databases (the embedded SQLite default).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import orjson
from django.core.exceptions import ValidationError
from django.db import models

from .features import FEATURE_NAMES, N_FEATURES


def vector_to_snapshot(values: Sequence[float | None]) -> dict[str, float | None]:
    """A stored vector as the snapshot dict (NaN and None are both missing)."""
    if len(values) != N_FEATURES:
        raise ValueError(f"a feature snapshot has {N_FEATURES} values, got {len(values)}")
    return {
        name: None if value is None or math.isnan(value) else float(str(np.float32(value)))
        for name, value in zip(FEATURE_NAMES, values)
    }


def snapshot_to_vector(snapshot: Mapping[str, float | None] | Sequence[float | None]) -> list[float | None]:
    """A snapshot dict (names from FEATURE_NAMES, absent = missing) or a full vector, as the stored list."""
    if isinstance(snapshot, Mapping):
        unknown = set(snapshot) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(f"unknown feature(s) in snapshot: {', '.join(sorted(unknown))}")
        values = [snapshot.get(name) for name in FEATURE_NAMES]
    else:
        values = list(snapshot)
        if len(values) != N_FEATURES:
            raise ValueError(f"a feature snapshot has {N_FEATURES} values, got {len(values)}")
    return [None if v is None or math.isnan(v) else float(v) for v in values]


class FeatureVectorField(models.Field):
    description = "Feature snapshot (float32 vector in FEATURE_NAMES order)"

    def db_type(self, connection) -> str:
        return "real[]" if connection.vendor == "postgresql" else "text"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        if isinstance(value, (str, bytes)):
            value = orjson.loads(value)
        return vector_to_snapshot(value)

    def to_python(self, value):
        if value is None or (isinstance(value, Mapping) and len(value) == N_FEATURES and set(value) == set(FEATURE_NAMES)):
            return value
        try:
            return vector_to_snapshot(snapshot_to_vector(value))
        except (TypeError, ValueError) as exc:
            raise ValidationError(str(exc)) from exc

    def get_prep_value(self, value):
        return None if value is None else snapshot_to_vector(value)

    def get_db_prep_value(self, value, connection, prepared=False):
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or connection.vendor == "postgresql":
            return value
        return orjson.dumps(value).decode()

    def value_to_string(self, obj) -> str:
        return orjson.dumps(self.value_from_object(obj)).decode()

    def formfield(self, **kwargs):
        from django import forms

        return forms.JSONField(**{"disabled": True, **kwargs})
