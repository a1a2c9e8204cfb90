"""Load the shipped int8 ONNX models and run them: the agent's ONE inference module.

Every classifier the agent uses is an ONNX file listed in ``manifest.json`` of the
models directory. :func:`load_model` checks the file's sha256 against the manifest
*before* creating an onnxruntime session (a mismatch raises
:class:`ModelIntegrityError`), configures the session for a 4-core Raspberry Pi,
warms it up and returns an :class:`OnnxModel`, whose :meth:`OnnxModel.predict_proba`
is the plain ``features -> probabilities`` callable that ``sensing`` detectors take.

Models directory lookup (first match wins), see :func:`resolve_models_dir`:

1. the ``models_dir`` argument;
2. the ``AMBISENSE_MODELS_DIR`` environment variable;
3. ``<checkout>/models`` when running from a source checkout (editable install);
4. ``<prefix>/share/ambisense/models`` of an installed wheel (the wheel ships the
   shipped models there through ``[tool.setuptools.data-files]`` in pyproject.toml).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import sysconfig
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensing.errors import AmbisenseError

__all__ = [
    "ENV_MODELS_DIR",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "OnnxModel",
    "LatencyStats",
    "check_classifier",
    "default_threads",
    "load_manifest",
    "load_model",
    "load_models",
    "make_session_options",
    "model_entry",
    "model_operating_point",
    "model_or_rule",
    "precision_file",
    "resolve_models_dir",
    "sha256_bytes",
    "sha256_file",
]

ENV_MODELS_DIR = "AMBISENSE_MODELS_DIR"
MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "ambisense.models/1"
#: Where the wheel installs the shipped models, relative to the install scheme's data path.
INSTALLED_SUBDIR = ("share", "ambisense", "models")
PRECISIONS = ("int8", "fp32")


class ModelError(AmbisenseError):
    """A model cannot be found, verified or run."""


class ModelNotFoundError(ModelError, LookupError):
    """The model (or its file, or the manifest) does not exist.

    The message lists the models the manifest knows, so a typo is easy to spot.
    """


class ModelIntegrityError(ModelError):
    """A model file's sha256 differs from the manifest: the model is refused.

    Parameters
    ----------
    path : Path
        The refused file.
    expected, actual : str
        Hex sha256 from the manifest and of the file on disk.
    """

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.path, self.expected, self.actual = Path(path), expected, actual
        super().__init__(
            f"refusing model file {path}: sha256 mismatch (manifest expects {expected}, "
            f"file has {actual}); the file was modified or the manifest is stale — "
            f"rebuild the model with its training script or restore the file"
        )


# --------------------------------------------------------------------------- lookup


def _checkout_models_dir() -> Path:
    """``<repo>/models`` next to this package when running from a source checkout."""
    return Path(__file__).resolve().parents[1] / "models"


def _installed_models_dirs() -> list[Path]:
    """Candidate ``share/ambisense/models`` directories of installed wheels."""
    dirs: list[Path] = []
    schemes = [sysconfig.get_default_scheme()]
    try:
        schemes.append(sysconfig.get_preferred_scheme("user"))
    except (AttributeError, KeyError):  # pragma: no cover - very old Pythons
        pass
    for scheme in schemes:
        try:
            data = sysconfig.get_path("data", scheme)
        except KeyError:  # pragma: no cover - unknown scheme on this platform
            continue
        if data:
            dirs.append(Path(data).joinpath(*INSTALLED_SUBDIR))
    dirs.append(Path(sys.prefix).joinpath(*INSTALLED_SUBDIR))
    return list(dict.fromkeys(dirs))


def resolve_models_dir(models_dir: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding ``manifest.json`` and the ``*.onnx`` files.

    Parameters
    ----------
    models_dir : path-like, optional
        Explicit directory; wins over everything else.

    Returns
    -------
    Path
        The argument, else ``$AMBISENSE_MODELS_DIR``, else the checkout's ``models/``
        when it has a manifest, else the first installed ``share/ambisense/models``
        with a manifest, else the checkout path (so errors name a sensible place).
    """
    if models_dir is not None:
        return Path(models_dir)
    env = os.environ.get(ENV_MODELS_DIR)
    if env:
        return Path(env)
    checkout = _checkout_models_dir()
    if (checkout / MANIFEST_NAME).is_file():
        return checkout
    for cand in _installed_models_dirs():
        if (cand / MANIFEST_NAME).is_file():
            return cand
    return checkout


def load_manifest(models_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json``.

    Parameters
    ----------
    models_dir : path-like, optional
        See :func:`resolve_models_dir`.

    Returns
    -------
    dict
        ``{"schema": "ambisense.models/1", "models": {name: entry, ...}}``.

    Raises
    ------
    ModelNotFoundError
        No manifest in the directory.
    ModelError
        The manifest is not valid JSON or has the wrong schema.
    """
    path = resolve_models_dir(models_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ModelNotFoundError(
            f"no model manifest at {path} (set {ENV_MODELS_DIR} or pass models_dir)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise ModelError(f"{path}: expected schema {MANIFEST_SCHEMA!r}, got {got!r}")
    if not isinstance(manifest.get("models"), dict):
        raise ModelError(f"{path}: 'models' must be an object of name -> entry")
    return manifest


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_entry(
    manifest: dict[str, Any], name: str, *, where: str = "manifest"
) -> dict[str, Any]:
    """Manifest entry of ``name`` or a :class:`ModelNotFoundError` listing known models."""
    models = manifest["models"]
    if name not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ModelNotFoundError(f"model {name!r} is not in {where} (known models: {known})")
    return models[name]


def precision_file(entry: dict[str, Any], precision: str) -> tuple[str, str]:
    """``(file, sha256)`` of one precision of a manifest entry."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    files = entry.get("precisions", {})
    if precision in files:
        return files[precision]["file"], files[precision]["sha256"]
    if precision == "int8" and "file" in entry:
        return entry["file"], entry["sha256"]
    have = ", ".join(sorted(files)) or "none"
    raise ModelNotFoundError(f"model has no {precision} file (available: {have})")


# --------------------------------------------------------------------------- session


def default_threads() -> int:
    """Intra-op threads for a 4-core Pi: ``min(4, os.cpu_count())``."""
    return max(1, min(4, os.cpu_count() or 1))


def make_session_options(threads: int | None = None):
    """onnxruntime session options for the edge agent.

    Parameters
    ----------
    threads : int, optional
        Intra-op threads; default :func:`default_threads`. Inter-op threads are 1 and
        execution is sequential (the models are small MLP chains: no parallel branches).

    Returns
    -------
    onnxruntime.SessionOptions
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads) if threads else default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only
    return so


@dataclass
class LatencyStats:
    """Running latency of model calls over the last ``keep`` calls (bounded memory).

    Attributes
    ----------
    keep : int
        Number of most recent calls kept for the statistics.
    """

    keep: int = 1000
    _ms: deque = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    count: int = 0

    def add(self, ms: float) -> None:
        """Record one call of ``ms`` milliseconds."""
        with self._lock:
            self._ms.append(ms)
            if len(self._ms) > self.keep:
                self._ms.popleft()
            self.count += 1

    def reset(self) -> None:
        """Forget every recorded call."""
        with self._lock:
            self._ms.clear()
            self.count = 0

    def summary(self) -> dict[str, float]:
        """``{"n": calls, "mean": ms, "p95": ms, "max": ms}`` (NaN when no call yet)."""
        with self._lock:
            a = np.fromiter(self._ms, dtype=np.float64)
            n = self.count
        if a.size == 0:
            return {"n": n, "mean": float("nan"), "p95": float("nan"), "max": float("nan")}
        return {
            "n": n,
            "mean": float(a.mean()),
            "p95": float(np.percentile(a, 95)),
            "max": float(a.max()),
        }


class OnnxModel:
    """A verified onnxruntime session of one manifest model.

    Use :meth:`predict_proba` (or call the object) as the ``features -> probabilities``
    callable of a ``sensing`` detector.

    Attributes
    ----------
    name : str
        Manifest name.
    path : Path
        The loaded (verified) ONNX file.
    precision : str
        ``"int8"`` or ``"fp32"``.
    meta : dict
        The model's manifest entry (fs_hz, window_s, feature_names, metrics …).
    labels : list of str
        Class names, in the order of the probability columns.
    input_name : str
        Name of the single float32 input (``"features"`` for toolchain models).
    n_features : int or None
        Feature vector length (None if the model's input width is dynamic).
    latency : LatencyStats
        Wall time of each :meth:`predict_proba` call after warm-up, in ms.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        model_bytes: bytes,
        meta: dict[str, Any],
        *,
        precision: str = "int8",
        threads: int | None = None,
        warmup: int = 3,
    ) -> None:
        import onnxruntime as ort

        self.name, self.path, self.precision, self.meta = name, Path(path), precision, meta
        self.threads = int(threads) if threads else default_threads()
        try:
            self.session = ort.InferenceSession(
                model_bytes, make_session_options(self.threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected 1 input, model has {len(inputs)}")
        self.input_name: str = inputs[0].name
        width = inputs[0].shape[-1] if inputs[0].shape else None
        self.n_features: int | None = width if isinstance(width, int) else None
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name: str = meta.get("output_name") or (
            "probabilities" if "probabilities" in outputs else outputs[-1]
        )
        if self.output_name not in outputs:
            raise ModelError(f"{path}: no output {self.output_name!r} (outputs: {outputs})")
        self.labels: list[str] = list(meta.get("labels", []))
        self.latency = LatencyStats()
        self.warmup(warmup)

    # -- inference ------------------------------------------------------------

    def _as_batch(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2:
            raise ValueError(f"{self.name}: features must be 1-D or 2-D, got shape {X.shape}")
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(
                f"{self.name}: expected {self.n_features} features per window, got {X.shape[1]}"
            )
        return np.ascontiguousarray(X)

    def summary(self) -> dict[str, Any]:
        """What a report shows of this model: name, precision, file, its verified sha256,
        size, when and by which command it was built (from the manifest entry)."""
        entry = (self.meta.get("precisions") or {}).get(self.precision) or {}
        made = self.meta.get("created_by") or {}
        return {"name": self.name, "precision": self.precision, "file": self.path.name,
                "sha256": entry.get("sha256") or self.meta.get("sha256"),
                "size_bytes": entry.get("size_bytes"), "built_utc": made.get("utc"),
                "built_by": made.get("command"), "description": self.meta.get("description")}

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of a batch of feature windows.

        Parameters
        ----------
        X : ndarray, shape (n_windows, n_features) or (n_features,)
            Feature vectors (cast to float32).

        Returns
        -------
        ndarray of float32, shape (n_windows, n_labels)
            Columns in the order of :attr:`labels`.
        """
        X = self._as_batch(X)
        t0 = time.perf_counter()
        (proba,) = self.session.run([self.output_name], {self.input_name: X})
        self.latency.add((time.perf_counter() - t0) * 1e3)
        return np.asarray(proba, dtype=np.float32)

    __call__ = predict_proba

    def predict(self, X: np.ndarray) -> list[str]:
        """Most probable label of each window."""
        return [self.labels[i] for i in self.predict_proba(X).argmax(axis=1)]

    def warmup(self, n: int = 3) -> None:
        """Run ``n`` dummy windows (first runs allocate/pack weights), then reset latency."""
        width = self.n_features or len(self.meta.get("feature_names", [])) or 1
        dummy = np.zeros((1, width), dtype=np.float32)
        for _ in range(max(0, n)):
            self.session.run([self.output_name], {self.input_name: dummy})
        self.latency.reset()

    @property
    def fs_hz(self) -> float | None:
        """Sampling rate of the raw signal the features come from, in Hz (manifest)."""
        return self._input_meta.get("fs_hz")

    @property
    def window_s(self) -> float | None:
        """Length of one feature window, in seconds (manifest)."""
        return self._input_meta.get("window_s")

    @property
    def feature_names(self) -> list[str]:
        """Names of the feature columns, in order (manifest)."""
        return list(self._input_meta.get("feature_names", []))

    @property
    def _input_meta(self) -> dict[str, Any]:
        inputs = self.meta.get("inputs") or [{}]
        return inputs[0]

    @property
    def latency_ms(self) -> dict[str, float]:
        """Running latency per call since warm-up: ``{"n", "mean", "p95", "max"}`` in ms."""
        return self.latency.summary()

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.name!r}, {self.precision}, {self.path.name}, "
            f"threads={self.threads}, labels={self.labels})"
        )


def load_model(
    name: str,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    precision: str = "int8",
    threads: int | None = None,
    warmup: int = 3,
) -> OnnxModel:
    """Verify and load one model of the manifest.

    Parameters
    ----------
    name : str
        Manifest name (e.g. ``"seizure"``).
    models_dir : path-like, optional
        See :func:`resolve_models_dir`.
    precision : {"int8", "fp32"}
        Which exported file to load; the agent ships and uses int8.
    threads : int, optional
        Intra-op threads, default ``min(4, os.cpu_count())``.
    warmup : int
        Dummy runs before the first real call (not counted in latency).

    Returns
    -------
    OnnxModel

    Raises
    ------
    ModelNotFoundError
        Unknown name (the message lists the known models) or missing file.
    ModelIntegrityError
        The file's sha256 differs from the manifest; no session is created.
    """
    root = resolve_models_dir(models_dir)
    manifest = load_manifest(root)
    entry = model_entry(manifest, name, where=str(root / MANIFEST_NAME))
    fname, expected = precision_file(entry, precision)
    path = root / fname
    if not path.is_file():
        raise ModelNotFoundError(
            f"model {name!r} ({precision}): file {path} is missing "
            f"(known models: {', '.join(sorted(manifest['models']))})"
        )
    data = path.read_bytes()  # hash exactly the bytes the session is built from
    actual = sha256_bytes(data)
    if actual != expected:
        raise ModelIntegrityError(path, expected, actual)
    return OnnxModel(name, path, data, entry, precision=precision, threads=threads, warmup=warmup)


def load_models(
    names: Iterable[str] | None = None,
    *,
    models_dir: str | os.PathLike[str] | None = None,
    precision: str = "int8",
    threads: int | None = None,
) -> dict[str, OnnxModel]:
    """Load several (default: all) manifest models; see :func:`load_model`."""
    manifest = load_manifest(models_dir)
    wanted = list(manifest["models"]) if names is None else list(names)
    return {
        n: load_model(n, models_dir=models_dir, precision=precision, threads=threads)
        for n in wanted
    }


def check_classifier(model: OnnxModel, feature_names: Iterable[str], label: str, *,
                     where: str) -> OnnxModel:
    """Check that a classifier fits its feature extractor; returns ``model``.

    Parameters
    ----------
    model : OnnxModel
        The loaded model.
    feature_names : iterable of str
        The extractor's features, in column order. An older model may take a leading
        subset of them (features are only ever appended).
    label : str
        A class the model must have (e.g. ``"fall"``).
    where : str
        Named in the errors (the pipeline).

    Raises
    ------
    ValueError
        The model's feature names are not a prefix of the extractor's, it expects more
        features than the extractor makes, or it lacks ``label``.
    """
    ours = list(feature_names)
    names = list((model.meta.get("inputs") or [{}])[0].get("feature_names") or [])
    if names and names != ours[:len(names)]:
        raise ValueError(f"{where}: model features {names} are not the extractor's {ours}")
    if model.n_features is not None and model.n_features > len(ours):
        raise ValueError(f"{where}: model expects {model.n_features} features, the "
                         f"extractor makes {len(ours)}")
    if label not in model.labels:
        raise ValueError(f"{where}: model labels {model.labels} have no {label!r} class")
    return model


def model_or_rule(method: str, load: Callable[[], OnnxModel], *, name: str, where: str
                  ) -> OnnxModel | None:
    """The model of a pipeline that can fall back to a rule.

    ``method`` ``"rule"``: None; ``"model"``: ``load()``, its errors raised; ``"auto"``:
    ``load()``, or None with a warning naming the reason when it fails (a missing or
    tampered file, features that do not fit).
    """
    if method == "rule":
        return None
    try:
        return load()
    except Exception as exc:  # any load failure -> rule, loudly
        if method == "model":
            raise
        logging.getLogger(f"ambisense.{where}").warning(
            "%s: model %r not usable (%s); using the rule-based fallback", where, name, exc)
        return None


def model_operating_point(meta: dict[str, Any], name: str = "default", *,
                          where: str = "model") -> dict[str, Any]:
    """The detector options of a model's operating point ``name``.

    Parameters
    ----------
    meta : dict
        The model's manifest entry: ``extra.operating_points`` maps names to detector
        options; a model without it has only ``extra.operating_point``, its ``"default"``.
    name : str
        Operating-point name.
    where : str
        Named in the error (the pipeline).

    Raises
    ------
    ValueError
        ``name`` is not one of the model's operating points.
    """
    extra = meta.get("extra") or {}
    points = dict(extra.get("operating_points") or {})
    if not points and extra.get("operating_point"):
        points = {"default": extra["operating_point"]}
    if name not in points:
        raise ValueError(f"{where}: operating_point {name!r} is not one of the model's "
                         f"operating points {sorted(points)}")
    return dict(points[name])
