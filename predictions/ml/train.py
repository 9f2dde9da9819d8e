"""Train, validate and publish the landslide and flood early-warning models.

Why it is built this way:

* Features come from :func:`predictions.features.compute_features_grouped`, the
  same code the consumer and the API run, so training/serving skew is impossible.
* Validation follows LHASA v2 (Stanley et al. 2021): held-out *sites* and a later
  held-out *period*. Training rows must also keep their label horizon inside the
  training period (a row at t labels (t, t+H]); test rows start 72 h after the
  split so their feature windows do not reach back into the training period.
* Models are published only if held-out metrics clear the configured floors, and
  files are replaced atomically, so the serving registry never sees a bad or
  half-written model.
* Output is XGBoost's native UBJSON: loading it parses data and runs no code
  (unlike pickle/joblib), and identical seeds give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from predictions.features import FEATURE_NAMES, compute_features_grouped
from predictions.ml import synth

logger = logging.getLogger(__name__)

MODEL_NAMES = ("landslide", "flood")
DEFAULT_FLOORS = {"roc_auc": 0.90}
FLOOD_RULE_RAIN_24H_MM = 50.0
TEST_SITE_FRACTION = 0.25
TRAIN_PERIOD_FRACTION = 0.7
FEATURE_WINDOW_H = 72

XGB_PARAMS = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.08,
    "subsample": 0.8,
    "colsample_bytree": 0.9,
    "min_child_weight": 5,
    "lambda": 1.0,
    "max_bin": 256,
    "nthread": 2,  # fixed so the model is byte-identical on any machine
}
NUM_BOOST_ROUND = 150

# +1: probability may only rise with the feature. Physically: more rain, wetter
# soil, faster or accelerating ground never make a slope safer; a higher river,
# faster rise, or more rain never make a flood less likely. A higher flood stage
# (same water level) never makes a flood more likely.
MONOTONE = {
    "landslide": {"rainfall": 1, "soil_moisture": 1, "ground_movement": 1, "rain_1h": 1,
                  "rain_3h": 1, "rain_24h": 1, "rain_72h": 1, "rain_72h_excl_24h": 1,
                  "ground_movement_velocity": 1, "ground_movement_acceleration": 1},
    "flood": {"rainfall": 1, "water_level": 1, "rain_1h": 1, "rain_3h": 1, "rain_24h": 1,
              "rain_72h": 1, "water_level_rate": 1, "flood_stage": -1,
              "water_level_above_flood_stage": 1},
}


class TrainingRefused(Exception):
    """Held-out metrics fell below the floors; the active models were left untouched."""


@dataclass
class TrainConfig:
    seed: int = 42
    sites: int = 200
    days: int = 730
    landslide_horizon_hours: int = 24
    flood_horizon_hours: int = 6
    floors: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FLOORS))
    force: bool = False


@dataclass
class Dataset:
    X: np.ndarray
    site: np.ndarray
    hour: np.ndarray
    baseline: dict[str, np.ndarray]


def build_dataset(sim: synth.Simulation) -> Dataset:
    """One row per delivered reading, features computed exactly as in production."""
    site, hour = np.nonzero(sim.present)
    flood_stage = np.where(sim.flood_stage_known, sim.flood_stage, np.nan)
    values = {k: v[site, hour] for k, v in sim.obs.items()}
    ts = sim.ts[site, hour]
    X = compute_features_grouped(site, ts, values, site, ts, flood_stage=flood_stage[site])
    # Baselines see what an operator sees: observed rain, missing hours as dry.
    observed_rain = np.where(sim.present, sim.obs["rainfall"], np.nan)
    intensity, duration = synth.event_intensity_duration(observed_rain)
    caine = synth.caine_ratio(intensity, duration)[site, hour]
    rain24 = np.nan_to_num(X[:, FEATURE_NAMES.index("rain_24h")], nan=0.0)
    return Dataset(X=X, site=site, hour=hour, baseline={
        "landslide": caine, "flood": rain24 / FLOOD_RULE_RAIN_24H_MM})


def split_masks(ds: Dataset, n_sites: int, n_hours: int, horizon: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Train rows: training sites, label horizon ends by the split; test rows: other sites, later."""
    rng = np.random.default_rng(seed + 1)
    n_test = max(1, int(round(TEST_SITE_FRACTION * n_sites)))
    test_sites = np.zeros(n_sites, dtype=bool)
    test_sites[rng.permutation(n_sites)[:n_test]] = True
    split = int(TRAIN_PERIOD_FRACTION * n_hours)
    warm = ds.hour >= FEATURE_WINDOW_H  # full feature window available
    train = warm & ~test_sites[ds.site] & (ds.hour + horizon < split)
    test = (test_sites[ds.site] & (ds.hour >= split + FEATURE_WINDOW_H)
            & (ds.hour + horizon < n_hours))
    return train, test


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        m = idx == b
        table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "count": int(m.sum()),
                      "mean_predicted": float(p[m].mean()) if m.any() else None,
                      "observed_rate": float(y[m].mean()) if m.any() else None})
    return table


def compare_with_rule(y: np.ndarray, p: np.ndarray, rule_score: np.ndarray) -> dict:
    """Detection rate of the model at the false-alarm rate of the rule (score >= 1).

    The model threshold is the largest-detection threshold whose false-alarm rate
    does not exceed the rule's: with k = floor(FAR_rule * negatives) false alarms
    allowed, alarm when p is strictly above the (k+1)-th highest negative score.
    """
    pos, neg = y == 1, y == 0
    rule = rule_score >= 1.0
    far_rule = float(rule[neg].mean())
    pod_rule = float(rule[pos].mean())
    neg_sorted = np.sort(p[neg])[::-1]
    k = int(np.floor(far_rule * neg.sum()))
    threshold = float(neg_sorted[k]) if k < len(neg_sorted) else -np.inf
    alarm = p > threshold
    pod_model = float(alarm[pos].mean())
    return {
        "rule_false_alarm_rate": far_rule,
        "rule_detection_rate": pod_rule,
        "model_threshold": threshold,
        "model_false_alarm_rate": float(alarm[neg].mean()),
        "model_detection_rate": pod_model,
        "relative_gain": (pod_model / pod_rule - 1.0) if pod_rule > 0 else None,
        "rule_roc_auc": float(roc_auc_score(y, rule_score)),
    }


def evaluate(y: np.ndarray, p: np.ndarray, rule_score: np.ndarray) -> dict:
    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "reliability": reliability_table(y, p),
        "baseline": compare_with_rule(y, p, rule_score),
    }


def _fit(X: np.ndarray, y: np.ndarray, name: str, seed: int) -> xgb.Booster:
    params = dict(XGB_PARAMS, seed=seed,
                  monotone_constraints=tuple(MONOTONE[name].get(f, 0) for f in FEATURE_NAMES))
    dtrain = xgb.DMatrix(X, label=y, feature_names=list(FEATURE_NAMES), nthread=XGB_PARAMS["nthread"])
    return xgb.train(params, dtrain, num_boost_round=NUM_BOOST_ROUND)


def check_floors(metrics: dict[str, dict], floors: dict[str, float]) -> list[str]:
    """Human-readable list of floor violations (empty when every model passes)."""
    failures = []
    for name, m in metrics.items():
        for metric, floor in floors.items():
            value = m.get(metric) if metric in m else m["baseline"].get(metric)
            if not isinstance(value, (int, float)):
                failures.append(f"{name}: unknown or undefined metric {metric!r}")
            elif value < floor:
                failures.append(f"{name}: held-out {metric} {value:.4f} < floor {floor:.4f}")
    return failures


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; the serving user must be able to read
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_models(output_dir: str | os.PathLike, config: TrainConfig | None = None) -> dict[str, dict]:
    """Simulate, train, validate and (if floors pass) publish both models.

    Returns the metadata written per model. Raises :class:`TrainingRefused`
    without touching ``output_dir`` when a held-out metric is below its floor
    (unless ``config.force``).
    """
    cfg = config or TrainConfig()
    out = Path(output_dir)
    logger.info("train.start", extra={"seed": cfg.seed, "sites": cfg.sites, "days": cfg.days})
    sim = synth.simulate(cfg.sites, cfg.days, cfg.seed)
    ds = build_dataset(sim)
    labels = {"landslide": synth.landslide_labels(sim, cfg.landslide_horizon_hours),
              "flood": synth.flood_labels(sim, cfg.flood_horizon_hours)}
    horizons = {"landslide": cfg.landslide_horizon_hours, "flood": cfg.flood_horizon_hours}

    boosters, metadata = {}, {}
    for name in MODEL_NAMES:
        y = labels[name][ds.site, ds.hour].astype(np.float32)
        train, test = split_masks(ds, sim.n_sites, sim.n_hours, horizons[name], cfg.seed)
        if y[train].sum() == 0 or y[test].sum() == 0 or y[test].sum() == test.sum():
            raise TrainingRefused(f"{name}: too few events to train and validate; "
                                  "increase --sites or --days")
        booster = _fit(ds.X[train], y[train], name, cfg.seed)
        p = booster.inplace_predict(ds.X[test])
        metrics = evaluate(y[test], p, ds.baseline[name][test])
        logger.info("train.evaluated", extra={"model": name, "roc_auc": metrics["roc_auc"],
                                               "pr_auc": metrics["pr_auc"], "brier": metrics["brier"]})
        boosters[name] = booster
        metadata[name] = {
            "name": name,
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "features": list(FEATURE_NAMES),
            "horizon_hours": horizons[name],
            "seed": cfg.seed,
            "training_size": {"rows": int(train.sum()), "positives": int(y[train].sum()),
                              "sites": int(len(np.unique(ds.site[train]))),
                              "days": cfg.days},
            "metrics": metrics,
            "parameters": {**XGB_PARAMS, "num_boost_round": NUM_BOOST_ROUND,
                           "monotone_constraints": MONOTONE[name]},
            "validation": {"test_site_fraction": TEST_SITE_FRACTION,
                           "train_period_fraction": TRAIN_PERIOD_FRACTION,
                           "gap_hours_before_test": FEATURE_WINDOW_H,
                           "baseline_rule": ("Caine (1980) I >= 14.82 D^-0.39 on observed rain events"
                                             if name == "landslide" else
                                             f"24 h rainfall >= {FLOOD_RULE_RAIN_24H_MM:g} mm")},
            "data": f"synthetic (predictions.ml.synth), {cfg.sites} sites x {cfg.days} days",
            "libraries": {"xgboost": xgb.__version__, "numpy": np.__version__},
        }

    failures = check_floors({n: m["metrics"] for n, m in metadata.items()}, cfg.floors)
    if failures and not cfg.force:
        logger.warning("train.refused", extra={"failures": failures})
        raise TrainingRefused("refusing to replace the active models: " + "; ".join(failures))
    if failures:
        logger.warning("train.floors_overridden", extra={"failures": failures})

    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_NAMES:
        raw = bytes(boosters[name].save_raw("ubj"))
        metadata[name]["version"] = hashlib.sha256(raw).hexdigest()[:12]
        metadata[name]["model_file"] = f"{name}.ubj"
        _atomic_write(out / f"{name}.ubj", raw)
        _atomic_write(out / f"{name}.json",
                      (json.dumps(metadata[name], indent=2, sort_keys=True) + "\n").encode())
        logger.info("train.published", extra={"model": name, "version": metadata[name]["version"],
                                               "path": str(out / f"{name}.ubj")})
    return metadata


def summary_markdown(metadata: dict[str, dict]) -> str:
    """Markdown tables of held-out metrics and the rule comparison (for docs and the CLI)."""
    lines = ["| model | version | horizon h | train rows (pos) | test rows (pos) | ROC-AUC | PR-AUC | Brier |",
             "|---|---|---|---|---|---|---|---|"]
    for name, md in metadata.items():
        m, ts = md["metrics"], md["training_size"]
        lines.append(f"| {name} | {md.get('version', '-')} | {md['horizon_hours']} | "
                     f"{ts['rows']} ({ts['positives']}) | {m['rows']} ({m['positives']}) | "
                     f"{m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {m['brier']:.5f} |")
    lines += ["", "| model | rule | rule ROC-AUC | false-alarm rate | rule detection | model detection | relative gain |",
              "|---|---|---|---|---|---|---|"]
    for name, md in metadata.items():
        b = md["metrics"]["baseline"]
        gain = "n/a" if b["relative_gain"] is None else f"{100 * b['relative_gain']:+.1f} %"
        lines.append(f"| {name} | {md['validation']['baseline_rule']} | {b['rule_roc_auc']:.4f} | "
                     f"{b['rule_false_alarm_rate']:.4f} | {b['rule_detection_rate']:.4f} | "
                     f"{b['model_detection_rate']:.4f} | {gain} |")
    for name, md in metadata.items():
        lines += ["", f"Reliability ({name}, held-out):", "",
                  "| bin | rows | mean predicted | observed rate |", "|---|---|---|---|"]
        for r in md["metrics"]["reliability"]:
            fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            lines.append(f"| {r['bin']} | {r['count']} | {fmt(r['mean_predicted'])} | {fmt(r['observed_rate'])} |")
    return "\n".join(lines)
