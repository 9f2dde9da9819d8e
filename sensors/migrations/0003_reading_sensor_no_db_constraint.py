"""Readings keep their sensor link without a database foreign key (see sensors.models.Reading.sensor)."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("sensors", "0002_reading_timestamp_brin"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reading",
            name="sensor",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="readings", to="sensors.sensor"),
        ),
    ]
