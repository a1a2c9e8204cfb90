"""Model toolchain: scikit-learn → fp32 ONNX → static int8 (QDQ) → manifest entry.

One call does it all for a training script::

    from models.toolchain import build_model
    entry = build_model("seizure", pipeline, X_train, y_train, X_val, y_val,
                        labels=["background", "seizure"], feature_names=names,
                        fs_hz=256.0, window_s=4.0, training_data="CHB-MIT …",
                        metric="f1", seed=0)

It writes ``<name>.fp32.onnx``, ``<name>.int8.onnx``, ``<name>.val.npz`` and the
``<name>`` entry of ``manifest.json`` in ``out_dir`` (default: this ``models/``
directory), refusing (``QuantizationAccuracyError``) when int8 scores more than
``max_drop`` (1 point) below fp32 on the held-out data. ``python -m models.toolchain
verify`` rechecks every manifest entry. See ``models/README.md``.

Training-time only (needs scikit-learn, skl2onnx, onnx); the agent never imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from agent.inference import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    ModelError,
    load_manifest,
    make_session_options,
    model_entry,
    precision_file,
    resolve_models_dir,
    sha256_file,
)

__all__ = [
    "DEFAULT_OPSET",
    "METRICS",
    "MODELS_DIR",
    "QuantizationAccuracyError",
    "build_model",
    "evaluate_onnx",
    "export_onnx",
    "json_ready",
    "kernel_deviation",
    "measure_latency",
    "quantize_dynamic_int8",
    "quantize_int8",
    "save_validation_set",
    "score",
    "update_manifest",
    "verify_model",
    "verify_models",
]

#: This directory: where shipped models, their validation sets and manifest.json live.
MODELS_DIR = Path(__file__).resolve().parent
#: Fixed ONNX opsets (default domain, ai.onnx.ml) so exports are reproducible.
DEFAULT_OPSET: dict[str, int] = {"": 17, "ai.onnx.ml": 3}
#: Ops quantised to int8. Everything else (Scaler, Relu, Softmax…) stays float.
QUANT_OP_TYPES = ("MatMul", "Gemm", "Conv")
#: Largest mean |p| gap between fused int8 kernels and exact QDQ arithmetic (see
#: :func:`kernel_deviation`) that :func:`verify_model` accepts.
KERNEL_DEVIATION_MAX = 0.01
#: Upper bound of a shipped ``<name>.val.npz`` in bytes (the brief: < 200 KB).
VAL_MAX_BYTES = 190_000


class QuantizationAccuracyError(ModelError):
    """int8 scored more than the allowed drop below fp32: the model is not shipped."""


# --------------------------------------------------------------------------- metrics


def _positive_proba(proba: np.ndarray) -> np.ndarray:
    return proba[:, 1] if proba.shape[1] == 2 else proba


def _metric_fns() -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    from sklearn import metrics as m

    def pred(p: np.ndarray) -> np.ndarray:
        return p.argmax(axis=1)

    return {
        "accuracy": lambda y, p: m.accuracy_score(y, pred(p)),
        "balanced_accuracy": lambda y, p: m.balanced_accuracy_score(y, pred(p)),
        "f1": lambda y, p: m.f1_score(y, pred(p), average="binary", zero_division=0),
        "f1_macro": lambda y, p: m.f1_score(y, pred(p), average="macro", zero_division=0),
        "roc_auc": lambda y, p: m.roc_auc_score(
            y, _positive_proba(p), multi_class="ovr", labels=np.arange(p.shape[1])
        )
        if p.shape[1] > 2
        else m.roc_auc_score(y, p[:, 1]),
    }


#: Metric names accepted by :func:`build_model` (all in [0, 1], higher is better;
#: ``f1`` is binary with class index 1 as positive).
METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "f1_macro", "roc_auc")


def score(metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """Score class probabilities against integer labels.

    Parameters
    ----------
    metric : str
        One of :data:`METRICS`.
    y_true : ndarray of int, shape (n,)
        Class indices (0 … n_labels-1).
    proba : ndarray, shape (n, n_labels)
        Predicted probabilities.

    Returns
    -------
    float
        The metric, in [0, 1].
    """
    fns = _metric_fns()
    if metric not in fns:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return float(fns[metric](np.asarray(y_true), np.asarray(proba)))


# --------------------------------------------------------------------------- export


def export_onnx(
    estimator: Any,
    n_features: int,
    *,
    input_name: str = "features",
    opset: dict[str, int] | None = None,
    doc: str = "",
):
    """Convert a fitted scikit-learn classifier to an fp32 ONNX model.

    Parameters
    ----------
    estimator : sklearn classifier or Pipeline
        Fitted; must have ``predict_proba``. Prefer ``StandardScaler`` +
        ``MLPClassifier``/``LogisticRegression``: tree ensembles export to
        ``TreeEnsemble`` ops that cannot be int8-quantised, and ``LogisticRegression``
        exports to ``LinearClassifier`` which stays fp32 (nothing to quantise).
    n_features : int
        Feature vector length; the input is ``float32[None, n_features]``.
    input_name : str
        Name of the input tensor.
    opset : dict, optional
        Target opsets; default :data:`DEFAULT_OPSET`.
    doc : str
        Stored as the graph's doc string.

    Returns
    -------
    onnx.ModelProto
        Outputs ``label`` (int64, shape [N]) and ``probabilities`` (float32, [N, n_labels]);
        ZipMap disabled.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = to_onnx(
        estimator,
        initial_types=[(input_name, FloatTensorType([None, int(n_features)]))],
        options={"zipmap": False},
        target_opset=dict(opset or DEFAULT_OPSET),
    )
    out_names = [o.name for o in model.graph.output]
    if "probabilities" not in out_names:
        raise ModelError(f"exported model has no 'probabilities' output (outputs: {out_names})")
    # One opset per domain, and always the default one: skl2onnx 1.20 emits the default
    # domain twice for LogisticRegression pipelines, and onnxruntime's quantiser requires
    # exactly one ai.onnx entry.
    versions = {"": (opset or DEFAULT_OPSET)[""]}
    for o in model.opset_import:
        d = "" if o.domain == "ai.onnx" else o.domain
        versions[d] = max(versions.get(d, 0), o.version)
    from onnx import helper

    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
    if doc:
        model.graph.doc_string = doc
    return model


# --------------------------------------------------------------------------- quantise


class FeatureCalibrationReader(CalibrationDataReader):
    """``CalibrationDataReader`` over a feature matrix.

    Parameters
    ----------
    X : ndarray, shape (n, n_features)
        Calibration windows (training features, never held-out data).
    input_name : str
        Model input name.
    batch : int
        Windows per calibration batch.
    """

    def __init__(self, X: np.ndarray, input_name: str, batch: int = 64) -> None:
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.input_name, self.batch = input_name, batch
        self._it: Iterator[dict[str, np.ndarray]] = self._batches()

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.X), self.batch):
            yield {self.input_name: self.X[i : i + self.batch]}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = self._batches()


class _DropOrtAdvice(logging.Filter):
    """Hide quantize_static's root-logger advice to run pre-processing (see quantize_int8)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _count_nodes(path: Path, op_type: str) -> int:
    import onnx

    return sum(n.op_type == op_type for n in onnx.load(str(path)).graph.node)


def _run(path: Path, X: np.ndarray, input_name: str, threads: int = 1) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), make_session_options(threads),
                                providers=["CPUExecutionProvider"])
    return sess.run(["probabilities"], {input_name: np.ascontiguousarray(X, np.float32)})[0]


def kernel_deviation(
    int8_path: str | os.PathLike[str], X: np.ndarray, *, input_name: str = "features"
) -> float:
    """Mean |p| difference between onnxruntime's int8 kernels and exact QDQ arithmetic.

    With graph optimisations off, a QDQ model runs as DequantizeLinear → float MatMul →
    QuantizeLinear: the exact arithmetic the quantiser intended. With them on (as the
    agent runs it), onnxruntime fuses the pattern into integer kernels. Both should agree
    to ~1e-3; a large value means the kernels overflow on this CPU (e.g. 8-bit weights on
    x86 without VNNI), not that int8 is too coarse.

    Returns
    -------
    float
        Mean absolute probability difference over ``X``.
    """
    import onnxruntime as ort

    X = np.ascontiguousarray(X, dtype=np.float32)
    fused = _run(Path(int8_path), X, input_name)
    so = make_session_options(1)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(int8_path), so, providers=["CPUExecutionProvider"])
    exact = sess.run(["probabilities"], {input_name: X})[0]
    return float(np.abs(fused - exact).mean())


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    calibration_X: np.ndarray,
    *,
    input_name: str = "features",
    per_channel: bool | str = "auto",
    activation_type: str = "QInt8",
    weight_type: str = "QInt8",
    calibrate_method: str = "MinMax",
    op_types: Sequence[str] = QUANT_OP_TYPES,
    reduce_range: bool = True,
) -> dict[str, Any]:
    """Static int8 quantisation (QDQ) of an fp32 model with calibration data.

    Parameters
    ----------
    fp32_path, int8_path : path-like
        Input fp32 ONNX and output int8 ONNX.
    calibration_X : ndarray, shape (n, n_features)
        Calibration windows (training features); a few hundred to a few thousand.
    input_name : str
        Model input name.
    per_channel : bool or "auto"
        Per-output-channel weight scales. ``"auto"`` quantises both ways and keeps
        per-channel only when it reduces the mean |p_int8 - p_fp32| on the calibration
        windows by at least 20 % (per-tensor is the faster kernel path).
    activation_type, weight_type : {"QInt8", "QUInt8"}
        Default S8S8 (symmetric int8), the recommended choice for the Pi's ARM cores.
    calibrate_method : {"MinMax", "Entropy", "Percentile"}
        Range estimation method.
    op_types : sequence of str
        Op types to quantise (the probability head stays float).
    reduce_range : bool
        7-bit weights. Default True: on x86 CPUs without VNNI (AVX2 — CI and most dev
        machines) onnxruntime's u8·s8 kernel saturates int16 sums of 8-bit weights; a
        3-class MLP lost ~10 points of macro-F1 that way, 7-bit weights lost 0.5. ARM
        (the Pi) does not saturate, and 7 bits cost it next to nothing, so one file
        is right on every CPU.

    Returns
    -------
    dict
        Quantisation settings actually used, for the manifest.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    X = np.ascontiguousarray(calibration_X, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="ambisense-quant-") as td:
        tmp = Path(td)
        # No quant_pre_process: its optimiser drops the value_info of tensors produced by
        # ai.onnx.ml ops (Scaler), and the quantiser then leaves the MatMul activations in
        # float (weight-only QDQ, no int8 kernels). The skl2onnx graph is already simple.
        src = fp32_path
        ort.set_default_logger_severity(3)  # silence "Removing initializer" chatter

        def run_q(pc: bool, out: Path) -> Path:
            quiet = _DropOrtAdvice()
            logging.getLogger().addFilter(quiet)
            try:
                quantize_static(
                    str(src), str(out), FeatureCalibrationReader(X, input_name),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(op_types),
                    per_channel=pc,
                    reduce_range=reduce_range,
                    activation_type=getattr(QuantType, activation_type),
                    weight_type=getattr(QuantType, weight_type),
                    calibrate_method=getattr(CalibrationMethod, calibrate_method),
                )
            finally:
                logging.getLogger().removeFilter(quiet)
            return out

        errors: dict[bool, float] = {}
        if per_channel == "auto":
            ref = _run(fp32_path, X, input_name)
            cands = {pc: run_q(pc, tmp / f"q{int(pc)}.onnx") for pc in (False, True)}
            for pc, p in cands.items():
                errors[pc] = float(np.abs(_run(p, X, input_name) - ref).mean())
            chosen = bool(errors[True] < 0.8 * errors[False])
            shutil.copyfile(cands[chosen], int8_path)
        else:
            chosen = bool(per_channel)
            shutil.copyfile(run_q(chosen, tmp / "q.onnx"), int8_path)
    info: dict[str, Any] = {
        "format": "QDQ",
        "method": "onnxruntime.quantization.quantize_static",
        "per_channel": chosen,
        "per_channel_mode": str(per_channel),
        "activation_type": activation_type,
        "weight_type": weight_type,
        "reduce_range": bool(reduce_range),
        "calibrate_method": calibrate_method,
        "calibration_windows": int(len(X)),
        "op_types": list(op_types),
        "quantized_activations": _count_nodes(int8_path, "QuantizeLinear"),
        "dequantized_tensors": _count_nodes(int8_path, "DequantizeLinear"),
    }
    if info["quantized_activations"] == 0:
        warnings.warn(
            f"{int8_path.name}: no activation was quantised (no {'/'.join(op_types)} op with "
            f"calibrated float inputs); the int8 file runs float kernels",
            stacklevel=2,
        )
    if errors:
        info["calibration_mean_abs_prob_error"] = {
            "per_tensor": errors[False], "per_channel": errors[True],
        }
    return info


def quantize_dynamic_int8(
    fp32_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    *,
    reduce_range: bool = True,
    op_types: Sequence[str] = ("MatMul", "Gemm"),
) -> dict[str, Any]:
    """Dynamic int8 (weights int8, activation scales computed per call), for comparison.

    Not the default: see ``docs/models.md`` for the static-vs-dynamic measurement.

    Returns
    -------
    dict
        Quantisation settings, for the manifest.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _DropOrtAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
                         reduce_range=reduce_range, op_types_to_quantize=list(op_types))
    finally:
        logging.getLogger().removeFilter(quiet)
    n = _count_nodes(Path(int8_path), "DynamicQuantizeLinear")
    if n == 0:
        warnings.warn(f"{Path(int8_path).name}: nothing was quantised", stacklevel=2)
    return {"format": "dynamic", "method": "onnxruntime.quantization.quantize_dynamic",
            "weight_type": "QInt8", "reduce_range": bool(reduce_range),
            "op_types": list(op_types), "quantized_activations": n}


# --------------------------------------------------------------------------- evaluate


def measure_latency(
    path: str | os.PathLike[str],
    X: np.ndarray,
    *,
    input_name: str = "features",
    threads: int = 1,
    n: int = 200,
    warmup: int = 10,
    batch: int = 1,
) -> dict[str, float]:
    """Wall-clock latency of single-window inference.

    Parameters
    ----------
    path : path-like
        ONNX model.
    X : ndarray, shape (m, n_features)
        Windows cycled through (real feature vectors, not zeros).
    threads : int
        Intra-op threads (1 = the manifest's reference figure).
    n, warmup : int
        Timed and untimed calls.
    batch : int
        Windows per call; the result is per call.

    Returns
    -------
    dict
        ``{"mean_ms", "median_ms", "p95_ms", "threads", "batch", "n"}``. On a loaded
        machine a few preempted calls inflate the mean; the median is the robust figure.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), make_session_options(threads),
                                providers=["CPUExecutionProvider"])
    X = np.ascontiguousarray(X, dtype=np.float32)
    m = len(X)
    rows = [X[(i * batch) % m : (i * batch) % m + batch] for i in range(max(n, warmup))]
    rows = [r if len(r) == batch else X[:batch] for r in rows]
    for r in rows[:warmup]:
        sess.run(["probabilities"], {input_name: r})
    t = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        sess.run(["probabilities"], {input_name: rows[i]})
        t[i] = (time.perf_counter() - t0) * 1e3
    return {"mean_ms": float(t.mean()), "median_ms": float(np.median(t)),
            "p95_ms": float(np.percentile(t, 95)),
            "threads": int(threads), "batch": int(batch), "n": int(n)}


def evaluate_onnx(
    path: str | os.PathLike[str],
    X: np.ndarray,
    y: np.ndarray,
    *,
    metric: str = "accuracy",
    input_name: str = "features",
    latency_n: int = 500,
) -> dict[str, Any]:
    """Score, size and 1-thread per-window latency of one ONNX file.

    Returns
    -------
    dict
        ``{"metric", "score", "size_bytes", "latency_ms_mean", "latency_ms_median",
        "latency_ms_p95", "latency_threads"}``, plus ``"proba"`` (ndarray, popped before writing JSON).
    """
    proba = _run(Path(path), X, input_name)
    lat = measure_latency(path, X, input_name=input_name, threads=1, n=latency_n)
    return {
        "metric": metric,
        "score": score(metric, y, proba),
        "size_bytes": Path(path).stat().st_size,
        "latency_ms_mean": round(lat["mean_ms"], 4),
        "latency_ms_median": round(lat["median_ms"], 4),
        "latency_ms_p95": round(lat["p95_ms"], 4),
        "latency_threads": 1,
        "proba": proba,
    }


# --------------------------------------------------------------------------- val set


def save_validation_set(
    path: str | os.PathLike[str],
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    max_bytes: int = VAL_MAX_BYTES,
) -> dict[str, Any]:
    """Save a stratified subset of held-out data as ``.npz`` smaller than ``max_bytes``.

    Parameters
    ----------
    path : path-like
        Output ``<name>.val.npz`` (arrays ``X`` float32, ``y`` int64).
    X, y : ndarray
        Held-out features and integer labels.
    seed : int
        Subsampling seed.
    max_bytes : int
        Size bound of the file.

    Returns
    -------
    dict
        ``{"file", "n", "class_counts"}`` (sha256 added by the caller).
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n_keep = min(len(X), max(1, max_bytes // (4 * X.shape[1] + 8)))
    path = Path(path)
    while True:
        if n_keep >= len(X):
            idx = np.arange(len(X))
        else:  # stratified: each class keeps its share, at least one window
            idx_parts = []
            for c in np.unique(y):
                members = np.flatnonzero(y == c)
                k = max(1, round(n_keep * len(members) / len(y)))
                idx_parts.append(rng.choice(members, size=min(k, len(members)), replace=False))
            idx = np.sort(np.concatenate(idx_parts))
        np.savez_compressed(path, X=X[idx], y=y[idx])
        if path.stat().st_size < max_bytes or n_keep <= 1:
            break
        n_keep = int(n_keep * 0.8)
    counts = np.bincount(y[idx]).tolist()
    return {"file": path.name, "n": int(len(idx)), "class_counts": counts}


def load_validation_set(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(X float32, y int64)`` of a ``.val.npz``."""
    with np.load(path) as z:
        return z["X"].astype(np.float32), z["y"].astype(np.int64)


# --------------------------------------------------------------------------- manifest


@contextlib.contextmanager
def _manifest_lock(out_dir: Path) -> Iterator[None]:
    """Exclusive lock so two training scripts can update the manifest concurrently.

    The lock file lives in the temp dir (keyed by the models dir), not in the repo.
    """
    import hashlib

    key = hashlib.sha1(str(out_dir.resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"ambisense-manifest-{key}.lock"
    with open(lock, "a+") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: best effort
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays → Python; anything else is a TypeError naming the type."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"manifest values must be JSON-serialisable, got {type(obj).__name__}")


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars/arrays turned into Python (TypeError for the rest)."""
    return json.loads(json.dumps(value, default=_json_default))


def update_manifest(
    out_dir: str | os.PathLike[str], name: str, entry: dict[str, Any] | None
) -> dict[str, Any]:
    """Set (or with ``entry=None`` remove) one model's manifest entry, atomically.

    Creates ``manifest.json`` when missing. Other entries are untouched; models are
    kept sorted by name so diffs stay small.

    Returns
    -------
    dict
        The whole manifest as written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST_NAME
    with _manifest_lock(out_dir):
        manifest = (load_manifest(out_dir) if path.is_file()
                    else {"schema": MANIFEST_SCHEMA, "models": {}})
        models = dict(manifest["models"])
        if entry is None:
            models.pop(name, None)
        else:
            models[name] = json_ready(entry)
        manifest["models"] = dict(sorted(models.items()))
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return manifest


def _describe(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    if steps:
        return " -> ".join(_describe(s) for _, s in steps)
    members = getattr(estimator, "estimators", None)
    if members:  # VotingClassifier: the members (they differ only in their seeds here)
        inner = "; ".join(_describe(m) for _, m in members)
        return f"{type(estimator).__name__}({getattr(estimator, 'voting', '')}: {inner})"
    params = {k: v for k, v in estimator.get_params(deep=False).items()
              if k in ("hidden_layer_sizes", "C", "alpha", "activation", "max_iter",
                       "random_state", "class_weight")}
    inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{type(estimator).__name__}({inner})"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def _default_created_by() -> dict[str, str]:
    """Script (repo-relative) and the command that reproduces this build."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    script = Path(getattr(main, "__file__", None) or argv0)
    with contextlib.suppress(ValueError, OSError):
        script = script.resolve().relative_to(MODELS_DIR.parent)
    args = " ".join(sys.argv[1:])
    if spec is not None and spec.name and spec.name != "__main__":
        command = f"python -m {spec.name} {args}"
    else:
        command = f"python {script.as_posix()} {args}"
    return {"script": script.as_posix(), "command": command.strip()}


def _is_fitted(estimator: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(estimator)
        return True
    except NotFittedError:
        return False


@dataclass
class _Paths:
    fp32: Path
    int8: Path
    val: Path


def build_model(
    name: str,
    estimator: Any,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    labels: Sequence[str],
    feature_names: Sequence[str],
    fs_hz: float,
    window_s: float,
    training_data: str | dict[str, Any],
    metric: str = "accuracy",
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    description: str = "",
    input_name: str = "features",
    per_channel: bool | str = "auto",
    reduce_range: bool = True,
    quant_mode: str = "static",
    calibration_size: int = 1000,
    max_drop: float = 0.01,
    created_by: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (if needed), export, quantise, evaluate and register one model.

    Parameters
    ----------
    name : str
        Manifest key and file stem (``[a-z0-9_]+``), e.g. ``"seizure"``.
    estimator : sklearn classifier or Pipeline
        Fitted on ``X_train``/``y_train`` here unless already fitted. Give it a fixed
        ``random_state`` (the toolchain does not reseed it).
    X_train, y_train : ndarray
        Training features (n, n_features) and integer labels 0 … len(labels)-1. Also the
        int8 calibration data (``calibration_size`` windows drawn with ``seed``).
    X_val, y_val : ndarray
        Held-out data (never used for fitting or calibration). Scores in the manifest
        are on all of it; a stratified subset < 190 KB is saved as ``<name>.val.npz``.
    labels : sequence of str
        Class names in probability-column order.
    feature_names : sequence of str
        One per feature column.
    fs_hz : float
        Sampling rate of the raw signal the features are computed from, in Hz.
    window_s : float
        Length of one feature window, in seconds.
    training_data : str or dict
        What the model was trained on (dataset, recordings, split, licence).
    metric : str
        One of :data:`METRICS`; used for the int8-vs-fp32 gate.
    seed : int
        Seed of calibration / validation subsampling; recorded in the manifest.
    out_dir : path-like, optional
        Default: the repository's ``models/``.
    description : str
        One line on what the model detects.
    input_name : str
        ONNX input name.
    per_channel : bool or "auto"
        See :func:`quantize_int8`.
    reduce_range : bool
        7-bit weights, see :func:`quantize_int8` (keep True unless you measured).
    quant_mode : {"static", "dynamic"}
        ``"static"`` (default): QDQ with calibration, :func:`quantize_int8`.
        ``"dynamic"``: :func:`quantize_dynamic_int8`, only if a benchmark on the target
        says so (``docs/models.md``).
    calibration_size : int
        Number of training windows used for calibration.
    max_drop : float
        Largest allowed ``fp32 - int8`` metric difference (0.01 = 1 point), checked on
        the full held-out set and on the saved ``.val.npz``.
    created_by : dict, optional
        ``{"script", "command"}``; default from ``sys.argv``.
    extra : dict, optional
        Extra JSON-serialisable facts stored under ``"extra"`` (e.g. event-level scores).

    Returns
    -------
    dict
        The manifest entry written.

    Raises
    ------
    QuantizationAccuracyError
        int8 lost more than ``max_drop``; nothing is written.
    ValueError
        Inconsistent shapes, labels or metric.
    """
    if not name or not all(c.isalnum() or c == "_" for c in name) or name != name.lower():
        raise ValueError(f"model name must match [a-z0-9_]+, got {name!r}")
    if quant_mode not in ("static", "dynamic"):
        raise ValueError(f"quant_mode must be 'static' or 'dynamic', got {quant_mode!r}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    X_train = np.asarray(X_train, dtype=np.float32)
    X_val = np.asarray(X_val, dtype=np.float32)
    y_train, y_val = np.asarray(y_train).astype(np.int64), np.asarray(y_val).astype(np.int64)
    n_features = X_train.shape[1]
    if X_val.ndim != 2 or X_val.shape[1] != n_features:
        raise ValueError(f"X_val must be (n, {n_features}), got {X_val.shape}")
    if len(feature_names) != n_features:
        raise ValueError(f"{len(feature_names)} feature names for {n_features} features")
    if not np.isfinite(X_train).all() or not np.isfinite(X_val).all():
        raise ValueError("features contain NaN or inf")
    labels = [str(v) for v in labels]
    if set(np.unique(y_train)) != set(range(len(labels))):
        raise ValueError(f"y_train must use every class index 0..{len(labels) - 1} "
                         f"(labels={labels}), found {sorted(set(np.unique(y_train)))}")

    if not _is_fitted(estimator):
        estimator.fit(X_train, y_train)
    classes = list(getattr(estimator, "classes_", range(len(labels))))
    if [int(c) for c in classes] != list(range(len(labels))):
        raise ValueError(f"estimator classes_ {classes} are not 0..{len(labels) - 1}")

    out = Path(out_dir) if out_dir is not None else MODELS_DIR
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cal_idx = np.sort(rng.choice(len(X_train), size=min(calibration_size, len(X_train)),
                                 replace=False))
    import onnx

    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out) as td:
        tmp = Path(td)
        p = _Paths(tmp / f"{name}.fp32.onnx", tmp / f"{name}.int8.onnx", tmp / f"{name}.val.npz")
        model = export_onnx(estimator, n_features, input_name=input_name,
                            doc=description or name)
        onnx.save(model, str(p.fp32))
        if quant_mode == "static":
            qinfo = quantize_int8(p.fp32, p.int8, X_train[cal_idx], input_name=input_name,
                                  per_channel=per_channel, reduce_range=reduce_range)
        else:
            qinfo = quantize_dynamic_int8(p.fp32, p.int8, reduce_range=reduce_range)
        res = {k: evaluate_onnx(getattr(p, k), X_val, y_val, metric=metric,
                                input_name=input_name) for k in ("fp32", "int8")}
        agreement = float((res["fp32"]["proba"].argmax(1) == res["int8"]["proba"].argmax(1))
                          .mean())
        for r in res.values():
            r.pop("proba")
        kdev = kernel_deviation(p.int8, X_val, input_name=input_name)
        drop = res["fp32"]["score"] - res["int8"]["score"]
        val_info = save_validation_set(p.val, X_val, y_val, seed=seed)
        Xs, ys = load_validation_set(p.val)
        val_scores = {k: score(metric, ys, _run(getattr(p, k), Xs, input_name))
                      for k in ("fp32", "int8")}
        val_drop = val_scores["fp32"] - val_scores["int8"]
        if drop > max_drop or val_drop > max_drop:
            raise QuantizationAccuracyError(
                f"{name}: int8 {metric} is {drop:.4f} below fp32 on the held-out set "
                f"({res['fp32']['score']:.4f} -> {res['int8']['score']:.4f}) and "
                f"{val_drop:.4f} on the saved validation subset; allowed {max_drop}. "
                f"Try per_channel=True, a larger calibration_size, quant_mode='dynamic', "
                f"or a model with fewer outlier activations."
            )
        if kdev > KERNEL_DEVIATION_MAX:
            raise QuantizationAccuracyError(
                f"{name}: onnxruntime's int8 kernels deviate from exact QDQ arithmetic by "
                f"{kdev:.4f} (mean |p|) on this CPU (integer overflow); keep "
                f"reduce_range=True"
            )
        val_info.update(sha256=sha256_file(p.val), metric=metric,
                        fp32=round(val_scores["fp32"], 6), int8=round(val_scores["int8"], 6))
        files = {k: {"file": getattr(p, k).name, "sha256": sha256_file(getattr(p, k)),
                     "size_bytes": getattr(p, k).stat().st_size} for k in ("fp32", "int8")}
        entry = _entry(
            description=description, files=files, input_name=input_name,
            n_features=n_features, fs_hz=fs_hz, window_s=window_s,
            feature_names=feature_names, labels=labels, training_data=training_data,
            y_train=y_train, n_val=len(X_val), seed=seed, estimator=estimator, qinfo=qinfo,
            metric=metric, res=res, drop=drop, agreement=agreement, kdev=kdev,
            max_drop=max_drop, val_info=val_info, created_by=created_by, extra=extra,
        )
        entry = json_ready(entry)  # fail before touching out_dir if not serialisable
        for k in ("fp32", "int8", "val"):
            os.replace(getattr(p, k), out / getattr(p, k).name)
    update_manifest(out, name, entry)
    return entry


def _entry(
    *, description: str, files: dict[str, Any], input_name: str, n_features: int,
    fs_hz: float, window_s: float, feature_names: Sequence[str], labels: list[str],
    training_data: Any, y_train: np.ndarray, n_val: int, seed: int, estimator: Any,
    qinfo: dict[str, Any], metric: str, res: dict[str, Any], drop: float, agreement: float,
    kdev: float, max_drop: float, val_info: dict[str, Any],
    created_by: dict[str, str] | None, extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """The manifest entry of one built model (see models/README.md)."""
    entry: dict[str, Any] = {
        "description": description,
        "file": files["int8"]["file"],
        "sha256": files["int8"]["sha256"],
        "precisions": files,
        "inputs": [{
            "name": input_name,
            "shape": [None, n_features],
            "dtype": "float32",
            "fs_hz": float(fs_hz),
            "window_s": float(window_s),
            "feature_names": [str(f) for f in feature_names],
        }],
        "output_name": "probabilities",
        "outputs": [{"name": "probabilities", "shape": [None, len(labels)], "dtype": "float32"},
                    {"name": "label", "shape": [None], "dtype": "int64"}],
        "labels": labels,
        "training_data": training_data,
        "n_train": int(len(y_train)),
        "n_val": int(n_val),
        "train_class_counts": np.bincount(y_train, minlength=len(labels)).tolist(),
        "seed": int(seed),
        "estimator": _describe(estimator),
        "opset": dict(DEFAULT_OPSET),
        "quantization": qinfo,
        "metrics": {
            "metric": metric,
            "heldout": {"fp32": res["fp32"], "int8": res["int8"],
                        "drop": round(drop, 6), "argmax_agreement": round(agreement, 6),
                        "kernel_deviation": round(kdev, 6)},
            "max_drop": max_drop,
        },
        "validation": val_info,
        "created_by": {**(created_by or _default_created_by()),
                       "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "versions": _versions()},
    }
    if extra:
        entry["extra"] = extra
    return entry


# --------------------------------------------------------------------------- verify


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(float16)": "float16"}


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_model`: ``ok`` and one line per failed check."""

    name: str
    problems: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_model(
    name: str, models_dir: str | os.PathLike[str] | None = None, *, max_drop: float | None = None
) -> VerifyResult:
    """Recheck one manifest entry without retraining.

    Checks: every file exists and matches its sha256; each session's inputs/outputs match
    the manifest; int8 scores within ``max_drop`` (default: the entry's, 0.01) of fp32 on
    ``<name>.val.npz``, and those scores equal the recorded ones (±0.01).
    """
    root = resolve_models_dir(models_dir)
    entry = model_entry(load_manifest(root), name)
    r = VerifyResult(name)
    files = {k: precision_file(entry, k) for k in ("fp32", "int8")}
    files["val"] = (entry["validation"]["file"], entry["validation"]["sha256"])
    for kind, (fname, sha) in files.items():
        f = root / fname
        if not f.is_file():
            r.problems.append(f"{kind}: file {f} missing")
        elif sha256_file(f) != sha:
            r.problems.append(f"{kind}: {f} sha256 {sha256_file(f)} != manifest {sha}")
    if r.problems:
        return r
    import onnxruntime as ort

    spec = entry["inputs"]
    for kind in ("fp32", "int8"):
        sess = ort.InferenceSession(str(root / files[kind][0]), make_session_options(1),
                                    providers=["CPUExecutionProvider"])
        got = [{"name": i.name, "shape": [d if isinstance(d, int) else None for d in i.shape],
                "dtype": _ORT_DTYPES.get(i.type, i.type)} for i in sess.get_inputs()]
        want = [{k: i[k] for k in ("name", "shape", "dtype")} for i in spec]
        if got != want:
            r.problems.append(f"{kind}: session inputs {got} != manifest inputs {want}")
        outs = [o.name for o in sess.get_outputs()]
        if entry.get("output_name", "probabilities") not in outs:
            r.problems.append(f"{kind}: no output {entry.get('output_name')!r} in {outs}")
    if r.problems:
        return r
    X, y = load_validation_set(root / files["val"][0])
    metric = entry["metrics"]["metric"]
    for kind in ("fp32", "int8"):
        proba = _run(root / files[kind][0], X, spec[0]["name"])
        if proba.shape != (len(X), len(entry["labels"])):
            r.problems.append(f"{kind}: probabilities shape {proba.shape}")
            return r
        r.scores[kind] = score(metric, y, proba)
        recorded = entry["validation"].get(kind)
        if recorded is not None and abs(r.scores[kind] - recorded) > 0.01:
            r.problems.append(f"{kind}: {metric} {r.scores[kind]:.4f} on val set, manifest "
                              f"records {recorded:.4f}")
    kdev = kernel_deviation(root / files["int8"][0], X, input_name=spec[0]["name"])
    r.scores["kernel_deviation"] = kdev
    if kdev > KERNEL_DEVIATION_MAX:
        r.problems.append(f"int8 kernels deviate from exact QDQ arithmetic by {kdev:.4f} "
                          f"(mean |p|) on this CPU (> {KERNEL_DEVIATION_MAX}): integer "
                          f"overflow; rebuild with reduce_range=True")
    limit = entry["metrics"].get("max_drop", 0.01) if max_drop is None else max_drop
    if r.scores["fp32"] - r.scores["int8"] > limit:
        r.problems.append(f"int8 {metric} {r.scores['int8']:.4f} is more than {limit} below "
                          f"fp32 {r.scores['fp32']:.4f}")
    return r


def verify_models(
    models_dir: str | os.PathLike[str] | None = None, names: Sequence[str] | None = None
) -> list[VerifyResult]:
    """:func:`verify_model` for every (or the named) manifest entries."""
    manifest = load_manifest(models_dir)
    return [verify_model(n, models_dir) for n in (names or list(manifest["models"]))]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.toolchain {verify,list} [--models-dir DIR] [NAME ...]``."""
    ap = argparse.ArgumentParser(prog="python -m models.toolchain",
                                 description="Check or list the shipped ONNX models.")
    ap.add_argument("command", choices=["verify", "list"])
    ap.add_argument("names", nargs="*", help="models to check (default: all)")
    ap.add_argument("--models-dir", default=None,
                    help="default: $AMBISENSE_MODELS_DIR or the checkout's models/")
    args = ap.parse_args(argv)
    root = resolve_models_dir(args.models_dir)
    manifest = load_manifest(root)
    print(f"{root / MANIFEST_NAME}: {len(manifest['models'])} model(s)")
    if args.command == "list":
        for n, e in manifest["models"].items():
            h = e["metrics"]["heldout"]
            print(f"  {n:16s} {e['file']:28s} {e['metrics']['metric']} "
                  f"fp32={h['fp32']['score']:.4f} int8={h['int8']['score']:.4f} "
                  f"int8 {h['int8']['size_bytes'] / 1024:.1f} KiB "
                  f"{h['int8']['latency_ms_mean']:.3f} ms")
        return 0
    failed = 0
    for r in verify_models(root, args.names or None):
        if r.ok:
            s = r.scores
            print(f"  OK   {r.name}: fp32={s['fp32']:.4f} int8={s['int8']:.4f}")
        else:
            failed += 1
            print(f"  FAIL {r.name}:")
            for p in r.problems:
                print(f"       - {p}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
