"""Feature snapshots move from jsonb objects to float32 vectors (predictions.fields), and the sensor link loses its database foreign key.

Existing snapshots are converted in place: each feature by its name, in the
FEATURE_NAMES order of this release (absent or null stays missing).
"""
import json

import django.db.models.deletion
from django.db import migrations, models

import predictions.fields

# FEATURE_NAMES as of this migration (the model contract's order), frozen here on purpose.
FEATURE_NAMES = (
    "rainfall", "soil_moisture", "ground_movement", "water_level", "rain_1h", "rain_3h", "rain_24h", "rain_72h",
    "rain_72h_excl_24h", "soil_moisture_rate", "water_level_rate", "ground_movement_velocity",
    "ground_movement_acceleration", "hours_since_previous", "flood_stage", "water_level_above_flood_stage",
)


def convert(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        elements = ", ".join(f"(features ->> '{name}')::real" for name in FEATURE_NAMES)
        schema_editor.execute(f"UPDATE predictions_prediction SET features_vector = ARRAY[{elements}]")
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, features FROM predictions_prediction")
        rows = cursor.fetchall()
        for pk, text in rows:
            snapshot = json.loads(text) if isinstance(text, str) else (text or {})
            vector = [snapshot.get(name) for name in FEATURE_NAMES]
            cursor.execute("UPDATE predictions_prediction SET features_vector = %s WHERE id = %s", [json.dumps(vector), pk])


class Migration(migrations.Migration):

    dependencies = [
        ("predictions", "0002_prediction_timestamp_brin"),
        ("sensors", "0003_reading_sensor_no_db_constraint"),
    ]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="features_vector",
            field=predictions.fields.FeatureVectorField(null=True),
        ),
        migrations.RunPython(convert, migrations.RunPython.noop),
        migrations.RemoveField(model_name="prediction", name="features"),
        migrations.RenameField(model_name="prediction", old_name="features_vector", new_name="features"),
        migrations.AlterField(
            model_name="prediction",
            name="features",
            field=predictions.fields.FeatureVectorField(default=dict, help_text="The features the models saw, by name (null = missing)."),
        ),
        migrations.AlterField(
            model_name="prediction",
            name="sensor",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="predictions", to="sensors.sensor"),
        ),
    ]
