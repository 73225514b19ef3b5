"""The model registry: MLflow tracking and model registry, with models that load safely.

Where the models live
    A local SQLite store under ``data/mlflow/`` (``mlflow.db`` and ``artifacts/``) unless
    ``MLFLOW_TRACKING_URI`` names a tracking server (or another store). ``mlflow ui
    --backend-store-uri sqlite:///data/mlflow/mlflow.db`` shows the runs.

What a registered version carries
    The fitted estimator (skops format, never pickle), its MLflow signature, the training data
    range, the feature list, the metrics it was registered with, the SHA-256 of its artifact and
    aliases ``champion`` (the one the flows and notebooks use) / ``challenger`` (the latest trained
    one, waiting for a decision).

Loading is safe
    :meth:`Registry.load` reads the skops file itself instead of going through MLflow's loader,
    and only when (1) the file's SHA-256 equals the hash this module recorded when it registered
    the version — a file written or replaced by anything else is refused — and (2) every type in
    it comes from a module this project trusts (:data:`TRUSTED_MODULES`), whatever the model's own
    ``MLmodel`` file says. Nothing is unpickled.

Decisions are rows
    Every promotion, rollback or refusal is a run in the experiment ``model-decisions`` with its
    numbers (see :class:`Decision`), so a data scientist can see why a model is champion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.errors import MLError

# Nothing of the workbench may call out of the plant's network: MLflow 3 sends usage telemetry
# unless told not to.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Progress bars of artifact downloads would land in the CLI's and the flows' output.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

#: Modules whose types a registered model may contain. A type outside these refuses the load.
TRUSTED_MODULES: tuple[str, ...] = ("sklearn", "imblearn", "numpy", "scipy", "workbench.ml")
CHAMPION = "champion"
CHALLENGER = "challenger"
DECISIONS_EXPERIMENT = "model-decisions"
_HISTORY_TAG = "workbench.champion_history"
_HASH_TAG = "workbench.sha256"
_ARTIFACT = "model.skops"

log = logging.getLogger(__name__)


def default_tracking_uri(data_path: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the SQLite store ``<data>/mlflow/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if data_path is None:
        from workbench import config

        data_path = config.settings().data_path
    return f"sqlite:///{(Path(data_path) / 'mlflow' / 'mlflow.db').resolve()}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: its card."""

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    created_at: dt.datetime
    training_start: dt.datetime | None
    training_end: dt.datetime | None
    features: tuple[str, ...]
    metrics: Mapping[str, float]
    sha256: str
    description: str = ""

    def as_row(self) -> dict[str, Any]:
        """The card as one flat row (for tables and JSON)."""
        return {"name": self.name, "version": self.version, "aliases": ",".join(self.aliases),
                "created_at": self.created_at.isoformat(),
                "training_start": self.training_start.isoformat() if self.training_start else None,
                "training_end": self.training_end.isoformat() if self.training_end else None,
                "n_features": len(self.features),
                **{f"metric.{k}": v for k, v in sorted(self.metrics.items())},
                "description": self.description}


@dataclass(frozen=True)
class Decision:
    """A promotion decision with the numbers it was made on.

    ``action`` is ``promote`` (the challenger became champion), ``keep`` (the champion stays, the
    challenger was not good enough), ``rollback`` (the previous champion is back) or ``manual``
    (a data scientist promoted a version by hand).
    """

    model: str
    action: str
    champion_before: int | None
    champion_after: int | None
    challenger: int | None
    reason: str
    metrics: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    decided_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    actor: str = "workbench"

    def as_row(self) -> dict[str, Any]:
        """The decision as one flat row."""
        row: dict[str, Any] = {"model": self.model, "action": self.action,
                               "champion_before": self.champion_before, "champion_after": self.champion_after,
                               "challenger": self.challenger, "reason": self.reason,
                               "decided_at": self.decided_at.isoformat(), "actor": self.actor}
        for metric, (champ, chall) in sorted(self.metrics.items()):
            row[f"champion.{metric}"] = champ
            row[f"challenger.{metric}"] = chall
        return row


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded from the registry with its card."""

    model: Any
    card: ModelVersion


class DeferredModel:
    """A registry version's card now, the model itself when first used.

    ``model`` loads it with every check of :meth:`Registry.load` (recorded hash, trusted types) on
    first access — a report whose section was computed ahead never pays for loading it (nor, with
    :func:`sqlite_card`, for importing MLflow).
    """

    def __init__(self, registry: Registry | str, card: ModelVersion) -> None:
        self.card = card
        self._registry = registry

    @functools.cached_property
    def model(self) -> Any:
        """The model (loaded and checked on first access)."""
        registry = self._registry if isinstance(self._registry, Registry) else Registry(self._registry)
        return registry.load(self.card.name, version=self.card.version).model


class RegistryUnreadableError(MLError):
    """:func:`sqlite_card` cannot read the store directly (then ask MLflow)."""


def sqlite_card(uri: str, name: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The card of the version under ``alias`` read straight from a SQLite MLflow store, read-only.

    What :meth:`Registry.version` returns, without importing MLflow (~2 s, which the report's
    root-cause notebook would pay only to learn which version is the champion). Reads MLflow's own
    tables (``registered_model_aliases``, ``model_versions``, ``model_version_tags``,
    ``latest_metrics``) of the pinned MLflow version; ``tests/ml/test_registry.py`` checks the two
    agree.

    Returns
    -------
    ModelVersion or None
        None when the model or the alias does not exist.

    Raises
    ------
    RegistryUnreadableError
        Not a SQLite store, or its tables are not as expected: ask :class:`Registry` instead.
    """
    import sqlite3

    if not uri.startswith("sqlite:///"):
        raise RegistryUnreadableError(f"{uri} is not a SQLite store")
    path = Path(uri.removeprefix("sqlite:///"))
    if not path.is_file():
        raise RegistryUnreadableError(f"no SQLite store at {path}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            found = con.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                                (name, alias)).fetchall()
            if not found:
                return None
            if len(found) > 1:
                raise RegistryUnreadableError(f"alias {alias!r} of {name} is in several workspaces")
            version = int(found[0][0])
            row = con.execute("SELECT creation_time, description, run_id FROM model_versions "
                              "WHERE name = ? AND version = ?", (name, version)).fetchall()
            if len(row) != 1:
                raise RegistryUnreadableError(f"{name} version {version} is not readable directly")
            created, description, run_id = row[0]
            key = (name, version)
            aliases = tuple(sorted(a for (a,) in con.execute(
                "SELECT alias FROM registered_model_aliases WHERE name = ? AND version = ?", key)))
            tags = dict(con.execute(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", key).fetchall())
            metrics = {key: math.nan if is_nan else float(value) for key, value, is_nan in con.execute(
                "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id or "",))}
    except sqlite3.Error as exc:
        raise RegistryUnreadableError(f"{path}: {exc}") from None
    return _model_card(name=name, version=version, aliases=aliases, run_id=run_id, created_ms=created,
                       tags=tags, metrics=metrics, description=description)


def _model_card(*, name: str, version: int, aliases: Iterable[str], run_id: str | None, created_ms: int,
                tags: Mapping[str, str], metrics: Mapping[str, float],
                description: str | None) -> ModelVersion:
    """A version's card from what MLflow stores of it (its tags hold the training range, the
    features and the artifact's hash) — one construction for MLflow's client and the direct read."""
    return ModelVersion(
        name=name, version=int(version), aliases=tuple(sorted(aliases)), run_id=run_id or "",
        created_at=dt.datetime.fromtimestamp(created_ms / 1000, dt.UTC),
        training_start=_when(tags.get("training_start")), training_end=_when(tags.get("training_end")),
        features=tuple(json.loads(tags.get("features", "[]"))), metrics=dict(metrics),
        sha256=tags.get(_HASH_TAG, ""), description=description or "")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _trusted(type_name: str) -> bool:
    return any(type_name == m or type_name.startswith(m + ".") for m in TRUSTED_MODULES)


def _check_name(name: str) -> None:
    # Names go into MLflow filter strings: letters, digits and underscores only.
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
        raise MLError(f"model name {name!r} must be a letter followed by letters, digits or underscores")


def _when(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise MLError(f"training range bound {value!r} has no time zone; pass timezone-aware times")
    return ts.to_pydatetime()


class Registry:
    """The MLflow registry of the workbench's models.

    Parameters
    ----------
    uri : str, optional
        Tracking and registry URI; default :func:`default_tracking_uri`.
    artifact_root : pathlib.Path, optional
        Where a local store keeps artifacts; default ``artifacts/`` beside a SQLite file, else
        MLflow's default for the server.
    """

    def __init__(self, uri: str | None = None, *, artifact_root: Path | None = None) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.uri = uri or default_tracking_uri()
        if artifact_root is None and self.uri.startswith("sqlite:///"):
            db = Path(self.uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            artifact_root = db.parent / "artifacts"
        self.artifact_root = artifact_root
        self._mlflow = mlflow
        # Alembic and MLflow announce every table they create at INFO on the first open.
        for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent"):
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        except Exception as exc:  # MLflow raises many kinds: say which store failed
            raise MLError(f"cannot open the model registry at {self.uri}: {exc}") from None

    # -- experiments and runs -------------------------------------------------------------------
    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = (self.artifact_root / name).resolve().as_uri() if self.artifact_root else None
        return self.client.create_experiment(name, artifact_location=location)

    # -- registering ----------------------------------------------------------------------------
    def register(self, name: str, model: Any, *, metrics: Mapping[str, float],
                 training_range: tuple[Any, Any], features: Sequence[str], sample: pd.DataFrame | None = None,
                 params: Mapping[str, Any] | None = None, description: str = "",
                 alias: str | None = CHALLENGER) -> ModelVersion:
        """Log ``model`` in a run of experiment ``name`` and register it as a new version.

        Parameters
        ----------
        name : str
            Model name (``rootcause``, ``scrap_anomaly``, …): the registered model and experiment.
        model : estimator
            A fitted scikit-learn-style estimator made of trusted types.
        metrics : mapping
            Validation metrics measured on held-out data (logged to the run, shown in the card).
        training_range : (start, end)
            Timezone-aware bounds of the data the model was trained on.
        features : sequence of str
            Feature names, in the order the model takes them.
        sample : DataFrame, optional
            A few input rows: the MLflow signature is inferred from them and the model's output.
        params : mapping, optional
            Hyperparameters to log (default: ``model.get_params()`` when it has one).
        alias : str or None
            Alias given to the new version (``challenger`` by default; ``champion`` for the very
            first model of a name is set by :meth:`promote`, not here).

        Returns
        -------
        ModelVersion
        """
        import skops.io as sio
        from mlflow.models import infer_signature

        _check_name(name)
        start, end = (_when(v) for v in training_range)
        untrusted = sio.get_untrusted_types(data=sio.dumps(model))
        foreign = [t for t in untrusted if not _trusted(t)]
        if foreign:
            raise MLError(f"model {name!r} holds types from outside the trusted modules "
                          f"({', '.join(TRUSTED_MODULES)}): {', '.join(foreign)}")
        signature = None
        if sample is not None and len(sample):
            signature = infer_signature(sample, model.predict(sample))
        if params is None and hasattr(model, "get_params"):
            params = {k: v for k, v in model.get_params(deep=False).items()
                      if isinstance(v, str | int | float | bool) or v is None}
        mlf = self._mlflow
        mlf.set_tracking_uri(self.uri)
        mlf.set_registry_uri(self.uri)
        with mlf.start_run(experiment_id=self._experiment(name)) as run:
            if params:
                mlf.log_params({k: str(v) for k, v in params.items()})
            mlf.log_metrics({k: float(v) for k, v in metrics.items()})
            mlf.set_tags({"training_start": start.isoformat() if start else "",
                          "training_end": end.isoformat() if end else "", "n_features": str(len(features))})
            info = mlf.sklearn.log_model(
                model, name="model", serialization_format="skops", skops_trusted_types=list(untrusted),
                signature=signature, pip_requirements=[],
                metadata={"features": list(features), "training_start": start.isoformat() if start else None,
                          "training_end": end.isoformat() if end else None})
        with tempfile.TemporaryDirectory() as tmp:
            local = self._download(info.model_uri, tmp)
            digest = _sha256(local / _ARTIFACT)
        if not self._exists(name):
            self.client.create_registered_model(name, description=f"workbench model {name}")
        tags = {_HASH_TAG: digest, "features": json.dumps(list(features)),
                "training_start": start.isoformat() if start else "",
                "training_end": end.isoformat() if end else ""}
        mv = self.client.create_model_version(name, source=info.model_uri, run_id=run.info.run_id, tags=tags,
                                              description=description or None)
        if alias:
            self.client.set_registered_model_alias(name, alias, mv.version)
        return self.version(name, version=int(mv.version))

    def _exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    def _download(self, source: str, into: str) -> Path:
        """A model's files, resolved against THIS store: MLflow resolves ``models:/m-…`` sources
        against the process-wide tracking URI, which a notebook kernel or flow run has not set."""
        if source.startswith("models:/m-"):
            model_id = source.removeprefix("models:/").split("/")[0]
            source = self.client.get_logged_model(model_id).artifact_location
        return Path(self._mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=into,
                                                              tracking_uri=self.uri))

    # -- reading cards --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Names of the registered models."""
        return sorted(m.name for m in self.client.search_registered_models())

    def version(self, name: str, *, alias: str | None = None, version: int | None = None) -> ModelVersion:
        """The card of one version, by alias or number.

        Raises
        ------
        MLError
            When the model, the alias or the version does not exist.
        """
        from mlflow.exceptions import MlflowException

        _check_name(name)
        if (alias is None) == (version is None):
            raise MLError("give either an alias or a version number")
        try:
            mv = (self.client.get_model_version_by_alias(name, alias) if alias is not None
                  else self.client.get_model_version(name, str(version)))
        except MlflowException:
            known = ", ".join(self.names()) or "none"
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise MLError(f"model {name!r} has no {what} in the registry at {self.uri} "
                          f"(registered models: {known})") from None
        return self._card(mv)

    def _card(self, mv: Any) -> ModelVersion:
        if not mv.aliases:
            # search_model_versions leaves the aliases out; the version itself has them.
            mv = self.client.get_model_version(mv.name, mv.version)
        run = self.client.get_run(mv.run_id) if mv.run_id else None
        return _model_card(name=mv.name, version=int(mv.version), aliases=mv.aliases or (), run_id=mv.run_id,
                           created_ms=mv.creation_timestamp, tags=dict(mv.tags or {}),
                           metrics=dict(run.data.metrics) if run else {}, description=mv.description)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Cards of every version of ``name`` (every model when None), newest first per model."""
        if name is not None:
            _check_name(name)
        names = [name] if name else self.names()
        out: list[ModelVersion] = []
        for n in names:
            found = self.client.search_model_versions(f"name = '{n}'") if self._exists(n) else []
            if name and not found:
                raise MLError(f"model {name!r} is not in the registry at {self.uri} "
                              f"(registered models: {', '.join(self.names()) or 'none'})")
            out += sorted((self._card(mv) for mv in found), key=lambda c: -c.version)
        return out

    # -- loading --------------------------------------------------------------------------------
    def load(self, name: str, *, alias: str | None = CHAMPION, version: int | None = None) -> LoadedModel:
        """Load a version (the champion by default) after checking where its file came from.

        Raises
        ------
        MLError
            When the version does not exist, its artifact's hash is not the one recorded when this
            registry registered it, or it holds a type from outside :data:`TRUSTED_MODULES`.
        """
        import skops.io as sio

        card = self.version(name, alias=None if version is not None else alias, version=version)
        mv = self.client.get_model_version(name, str(card.version))
        if not card.sha256:
            raise MLError(f"{name} version {card.version} was not registered by the workbench (no recorded "
                          "hash): refusing to load it")
        with tempfile.TemporaryDirectory() as tmp:
            local = self._download(mv.source, tmp)
            path = local / _ARTIFACT
            if not path.is_file():
                raise MLError(f"{name} version {card.version}: no {_ARTIFACT} in {mv.source}")
            digest = _sha256(path)
            if digest != card.sha256:
                raise MLError(f"{name} version {card.version}: the artifact {mv.source}/{_ARTIFACT} changed "
                              f"since it was registered (sha256 {digest[:12]}…, recorded "
                              f"{card.sha256[:12]}…): refusing to load it")
            untrusted = sio.get_untrusted_types(file=path)
            foreign = [t for t in untrusted if not _trusted(t)]
            if foreign:
                raise MLError(f"{name} version {card.version} holds types from outside the trusted modules: "
                              f"{', '.join(foreign)}: refusing to load it")
            model = sio.load(path, trusted=untrusted)
        return LoadedModel(model=model, card=card)

    def deferred(self, name: str, *, alias: str = CHAMPION) -> DeferredModel:
        """The version under ``alias`` with its card, loaded only when its model is first used.

        Raises
        ------
        MLError
            When the model or the alias does not exist.
        """
        return DeferredModel(self, self.version(name, alias=alias))

    # -- aliases and decisions ------------------------------------------------------------------
    def _history(self, name: str) -> list[int]:
        rm = self.client.get_registered_model(name)
        return [int(v) for v in json.loads((rm.tags or {}).get(_HISTORY_TAG, "[]"))]

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version number an alias points at, or None when it points nowhere."""
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def champion_version(self, name: str) -> int | None:
        """The champion's version number, or None when there is none yet."""
        return self.alias_version(name, CHAMPION)

    def promote(self, name: str, version: int, *, reason: str, action: str = "manual",
                metrics: Mapping[str, tuple[float | None, float | None]] | None = None,
                actor: str = "workbench") -> Decision:
        """Make ``version`` the champion and record the decision (the old champion is kept for
        :meth:`rollback`)."""
        self.version(name, version=version)  # exists?
        before = self.champion_version(name)
        if before != version:
            history = self._history(name)
            if before is not None:
                history.append(before)
            self.client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
            self.client.set_registered_model_alias(name, CHAMPION, str(version))
        if self.alias_version(name, CHALLENGER) == version:
            self.client.delete_registered_model_alias(name, CHALLENGER)
        decision = Decision(model=name, action=action, champion_before=before, champion_after=version,
                            challenger=version, reason=reason, metrics=dict(metrics or {}), actor=actor)
        self.record(decision)
        return decision

    def rollback(self, name: str, *, reason: str, actor: str = "workbench") -> Decision:
        """Give the champion alias back to the previous champion.

        Raises
        ------
        MLError
            When the model never had an earlier champion.
        """
        history = self._history(name)
        before = self.champion_version(name)
        if not history:
            raise MLError(f"model {name!r} has no earlier champion to roll back to "
                          f"(champion: {before if before is not None else 'none'})")
        previous = history.pop()
        self.client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
        self.client.set_registered_model_alias(name, CHAMPION, str(previous))
        decision = Decision(model=name, action="rollback", champion_before=before, champion_after=previous,
                            challenger=None, reason=reason, actor=actor)
        self.record(decision)
        return decision

    def record(self, decision: Decision) -> None:
        """Log a decision (also a refusal to promote) as a run of ``model-decisions``."""
        row = decision.as_row()
        exp = self._experiment(DECISIONS_EXPERIMENT)
        run = self.client.create_run(exp, tags={"model": decision.model, "action": decision.action,
                                                "mlflow.runName": f"{decision.model} {decision.action}"})
        for key, value in row.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and value is not None \
                    and "." in key:
                self.client.log_metric(run.info.run_id, key, float(value))
            else:
                self.client.log_param(run.info.run_id, key, "" if value is None else str(value)[:6000])
        self.client.set_terminated(run.info.run_id)

    def decisions(self, name: str | None = None) -> pd.DataFrame:
        """Every recorded decision (of ``name``), oldest first."""
        if name is not None:
            _check_name(name)
        exp = self.client.get_experiment_by_name(DECISIONS_EXPERIMENT)
        if exp is None:
            return pd.DataFrame(columns=["model", "action", "champion_before", "champion_after", "reason"])
        where = f"tags.model = '{name}'" if name else ""
        runs = self.client.search_runs([exp.experiment_id], filter_string=where,
                                       order_by=["attributes.start_time ASC"], max_results=10_000)
        rows = [{**r.data.params, **r.data.metrics} for r in runs]
        return pd.DataFrame(rows)
