"""Every ONNX model of the manifest: fp32 vs int8 latency at batch 1, size, accuracy."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.bench.base import Result, Skip, section


def latencies(paths: dict[str, Path], n_features: int, threads: int, n: int,
              rounds: int = 20) -> dict[str, dict[str, float]]:
    """Median/p95 ms per ``run`` of several models at batch 1, interleaved in ``rounds``
    (load from other processes hits every model alike), after a warm-up; sessions built
    with the agent's options (:func:`agent.inference.make_session_options`)."""
    import onnxruntime as ort

    from agent.inference import make_session_options

    X = np.random.default_rng(0).normal(size=(64, n_features)).astype(np.float32)
    sess, feeds = {}, {}
    for k, path in paths.items():
        sess[k] = ort.InferenceSession(str(path), make_session_options(threads),
                                       providers=["CPUExecutionProvider"])
        name = sess[k].get_inputs()[0].name
        feeds[k] = [{name: X[i:i + 1]} for i in range(64)]
        for f in feeds[k][:20]:
            sess[k].run(None, f)
    per_round = max(1, n // rounds)
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k in paths:
            s, fs = sess[k], feeds[k]
            for i in range(per_round):
                t0 = time.perf_counter()
                s.run(None, fs[i % 64])
                times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: {"median": float(np.median(t)), "p95": float(np.percentile(t, 95))}
            for k, t in times.items()}


def bench_manifest(models_dir: Path | None, threads: list[int], n: int) -> list[dict[str, Any]]:
    """One row per (model, threads): fp32 and int8 side by side."""
    from agent.inference import load_manifest, resolve_models_dir

    models_dir = resolve_models_dir(models_dir)
    rows = []
    for name, e in load_manifest(models_dir)["models"].items():
        nf = int(e["inputs"][0]["shape"][1])
        files = {p: models_dir / e["precisions"][p]["file"] for p in ("fp32", "int8")}
        held = e.get("metrics", {}).get("heldout", {})
        metric = e.get("metrics", {}).get("metric", "score")
        for t in threads:
            lat = latencies(files, nf, t, n)
            rows.append({
                "model": name, "features": nf, "threads": t,
                "fp32 KiB": files["fp32"].stat().st_size / 1024,
                "int8 KiB": files["int8"].stat().st_size / 1024,
                "fp32 median ms": lat["fp32"]["median"], "int8 median ms": lat["int8"]["median"],
                "int8 / fp32": lat["int8"]["median"] / lat["fp32"]["median"],
                "fp32 p95 ms": lat["fp32"]["p95"], "int8 p95 ms": lat["int8"]["p95"],
                "metric": metric,
                "fp32 score": held.get("fp32", {}).get("score"),
                "int8 score": held.get("int8", {}).get("score"),
                "drop": held.get("drop"), "max drop": e.get("metrics", {}).get("max_drop"),
            })
    return rows


@section("models", "ONNX models: fp32 vs int8",
         "Every model of `models/manifest.json`: median and p95 latency (ms per call, batch "
         "1, after warm-up, both precisions interleaved) with the agent's session options at "
         "its default intra-op threads (`min(4, cores)`) and at 1 thread; file sizes; held-out "
         "score of each precision and the int8 drop, from the manifest (measured when the "
         "model was built).", order=60)
def bench_models(quick: bool) -> Result:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise Skip(f"onnxruntime not installed ({exc})") from None
    from agent.inference import default_threads

    threads = sorted({default_threads(), 1})
    rows = bench_manifest(None, threads, 400 if quick else 2000)
    if not rows:
        raise Skip("models/manifest.json lists no model")
    return Result(rows, ["int8 is static QDQ (onnxruntime.quantization). For models this "
                         "small a call is dominated by onnxruntime's per-call overhead, so "
                         "int8 is not faster (and on a CPU without int8 dot-product "
                         "instructions, such as the Pi 4's Cortex-A72, it cannot be): the "
                         "gain is the file size at the same accuracy."])
