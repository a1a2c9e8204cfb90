"""fp32 vs int8 latency and size of the shipped models, and static QDQ vs dynamic int8.

Run from the repository root (needs the ``[train]`` extra)::

    python benchmarks/bench_models.py                 # shipped models + synthetic MLPs
    python benchmarks/bench_models.py --quick         # fewer timed calls
    python benchmarks/bench_models.py --json out.json
    python benchmarks/bench_models.py --shipped-only  # on the Pi: no scikit-learn needed

Part 1 times every model of ``models/manifest.json`` (fp32 and int8 files) with batch 1
at 1 and 4 intra-op threads, through the same session options as the agent
(:func:`agent.inference.make_session_options`). When the manifest is empty, or always
with ``--synthetic``, it also times synthetic MLPs of small/realistic/large size built
through the toolchain.

Part 2 quantises the realistic MLP both ways — static QDQ (the toolchain's path) and
``quantize_dynamic`` (MatMulInteger + DynamicQuantizeLinear) — and reports accuracy,
size and latency, so the choice of static QDQ is measured, not assumed.

Latencies are wall-clock ms per call (mean, median, p95), after warm-up. The machine's
other load shows up in p95: compare columns measured in the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # top-level models/ (training toolchain)

from agent.inference import load_manifest, make_session_options, resolve_models_dir  # noqa: E402
from models import toolchain  # noqa: E402

#: (name, n_features, hidden layers, training windows, epochs) of the synthetic MLPs.
#: "realistic" ~ a seizure/fall feature vector (e.g. 18 EEG channels x 14 features).
SYNTHETIC = [
    ("mlp_small", 32, (32,), 3000, 60),
    ("mlp_realistic", 256, (128, 64), 4000, 40),
    ("mlp_large", 1024, (512, 256), 3000, 8),
]


def _latencies(paths: dict[str, Path], X: np.ndarray, threads: int, n: int,
               batch: int = 1, rounds: int = 20) -> dict[str, dict[str, float]]:
    """mean/median/p95 ms per call of several models, interleaved.

    The calls are split into ``rounds`` and the models take turns each round, so load
    from other processes on a shared machine hits every model alike.
    """
    import onnxruntime as ort

    X = np.ascontiguousarray(X, dtype=np.float32)
    sess, feeds = {}, {}
    for k, path in paths.items():
        sess[k] = ort.InferenceSession(str(path), make_session_options(threads),
                                       providers=["CPUExecutionProvider"])
        name = sess[k].get_inputs()[0].name
        feeds[k] = [{name: X[(i * batch) % (len(X) - batch + 1):][:batch]} for i in range(64)]
        for f in feeds[k][:20]:  # warm-up
            sess[k].run(["probabilities"], f)
    per_round = max(1, n // rounds)
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k in paths:
            s, fs = sess[k], feeds[k]
            for i in range(per_round):
                t0 = time.perf_counter()
                s.run(["probabilities"], fs[i % 64])
                times[k].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for k, t in times.items():
        a = np.asarray(t)
        out[k] = {"mean": float(a.mean()), "median": float(np.median(a)),
                  "p95": float(np.percentile(a, 95))}
    return out


def _synthetic_data(n_features: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary task on a few informative directions of a correlated feature vector."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 16))
    A = rng.normal(size=(16, n_features)) / 4
    X = (Z @ A + 0.5 * rng.normal(size=(n, n_features))).astype(np.float32)
    s = Z[:, 0] + 0.8 * Z[:, 1] * Z[:, 2] - 0.5 * Z[:, 3] ** 2 + 0.3 * rng.normal(size=n)
    return X, (s > np.median(s)).astype(np.int64)


def build_synthetic(out_dir: Path, quick: bool) -> list[str]:
    """Build the synthetic MLPs through the toolchain into ``out_dir``."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    names = []
    for name, nf, hidden, n, epochs in SYNTHETIC:
        X, y = _synthetic_data(nf, n + n // 3)
        clf = make_pipeline(StandardScaler(), MLPClassifier(
            hidden, max_iter=max(3, epochs // (3 if quick else 1)), random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            toolchain.build_model(
                name, clf, X[:n], y[:n], X[n:], y[n:], labels=["neg", "pos"],
                feature_names=[f"f{i}" for i in range(nf)], fs_hz=1.0, window_s=1.0,
                training_data="synthetic (benchmarks/bench_models.py)", out_dir=out_dir,
                max_drop=1.0,  # benchmark: report the drop, do not gate
                created_by={"script": "benchmarks/bench_models.py", "command": "bench"},
            )
        names.append(name)
    return names


def bench_manifest(models_dir: Path, threads: list[int], n: int) -> list[dict]:
    """One row per (model, precision, threads)."""
    manifest = load_manifest(models_dir)
    rows = []
    for name, e in manifest["models"].items():
        nf = e["inputs"][0]["shape"][1]
        val = models_dir / e["validation"]["file"]
        X = toolchain.load_validation_set(val)[0] if val.is_file() else (
            np.random.default_rng(0).normal(size=(256, nf)).astype(np.float32))
        files = {prec: models_dir / e["precisions"][prec]["file"] for prec in ("fp32", "int8")}
        for t in threads:
            lat = _latencies(files, X, t, n)
            for prec, f in files.items():
                rows.append({"model": name, "precision": prec, "threads": t,
                             "features": nf, "size_kib": f.stat().st_size / 1024, **lat[prec],
                             "score": e["metrics"]["heldout"][prec]["score"],
                             "metric": e["metrics"]["metric"]})
    return rows


def bench_static_vs_dynamic(tmp: Path, n: int, threads: list[int],
                            spec: tuple = SYNTHETIC[1]) -> list[dict]:
    """One synthetic MLP: fp32, static QDQ variants, dynamic int8; accuracy and latency."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name, nf, hidden, ntrain, epochs = spec
    X, y = _synthetic_data(nf, ntrain + ntrain // 3, seed=1)
    Xtr, ytr, Xte, yte = X[:ntrain], y[:ntrain], X[ntrain:], y[ntrain:]
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden, max_iter=epochs, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Xtr, ytr)
    fp32 = tmp / f"{name}.sd.fp32.onnx"
    onnx.save(toolchain.export_onnx(clf, nf), str(fp32))
    variants = {"fp32": fp32}
    for label, kw in [("static QDQ s8s8 7-bit w (toolchain)", {}),
                      ("static QDQ s8s8 8-bit w", {"reduce_range": False}),
                      ("static QDQ u8s8 7-bit w", {"activation_type": "QUInt8"})]:
        p = tmp / f"{name}.sd.{len(variants)}.onnx"
        toolchain.quantize_int8(fp32, p, Xtr[:1000], per_channel=False, **kw)
        variants[label] = p
    for label, rr in [("dynamic s8 weights 8-bit", False), ("dynamic s8 weights 7-bit", True)]:
        p = tmp / f"{name}.sd.{len(variants)}.onnx"
        quantize_dynamic(str(fp32), str(p), weight_type=QuantType.QInt8, reduce_range=rr,
                         op_types_to_quantize=["MatMul", "Gemm"])
        variants[label] = p
    ref = toolchain._run(fp32, Xte, "features")
    rows = {}
    for label, p in variants.items():
        proba = toolchain._run(p, Xte, "features")
        rows[label] = {"model": name, "variant": label, "size_kib": p.stat().st_size / 1024,
                       "accuracy": toolchain.score("accuracy", yte, proba),
                       "mean_abs_dp": float(np.abs(proba - ref).mean()),
                       "kernel_deviation": toolchain.kernel_deviation(p, Xte)}
    for t in threads:
        for batch in (1, 64):
            lat = _latencies(variants, Xte, t, n if batch == 1 else max(40, n // 10), batch)
            for label, v in lat.items():
                for stat, val in v.items():
                    rows[label][f"t{t}_b{batch}_{stat}"] = val
    return list(rows.values())
    return rows


def bench_agent_wrapper(models_dir: Path, n: int) -> list[dict]:
    """Latency the agent sees: :meth:`OnnxModel.predict_proba` incl. its Python overhead."""
    from agent.inference import load_model

    rows = []
    for name in load_manifest(models_dir)["models"]:
        for threads in (1, None):
            m = load_model(name, models_dir=models_dir, threads=threads)
            X = np.random.default_rng(0).normal(size=(64, m.n_features)).astype(np.float32)
            lat = np.empty(n)
            for i in range(n):
                t0 = time.perf_counter()
                m.predict_proba(X[i % 64])
                lat[i] = (time.perf_counter() - t0) * 1e3
            rows.append({"model": name, "threads": m.threads, "mean": float(lat.mean()),
                         "median": float(np.median(lat)),
                         "p95": float(np.percentile(lat, 95))})
    return rows


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                flags = Path("/proc/cpuinfo").read_text()
                isa = [f for f in ("avx512_vnni", "avx_vnni", "avx512f", "avx2", "asimddp")
                       if f" {f}" in flags]
                return f"{name} ({', '.join(isa) or 'no AVX2/VNNI'})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--n", type=int, default=2000, help="timed calls per cell (batch 1)")
    ap.add_argument("--quick", action="store_true", help="n=300, fewer training epochs")
    ap.add_argument("--synthetic", action="store_true", help="also time synthetic MLPs")
    ap.add_argument("--shipped-only", action="store_true",
                    help="only the manifest's models: no training (e.g. on the Pi, without "
                         "scikit-learn)")
    ap.add_argument("--json", type=Path, default=None, help="write all rows here")
    args = ap.parse_args(argv)
    n = 300 if args.quick else args.n
    import onnxruntime as ort

    print(f"# bench_models: {_cpu()}, {os.cpu_count()} logical CPUs, "
          f"onnxruntime {ort.__version__}, python {platform.python_version()}")
    print(f"# batch 1 unless stated; {n} timed calls per cell; ms per call\n")
    result: dict = {"cpu": _cpu(), "cpu_count": os.cpu_count(), "onnxruntime": ort.__version__}
    models_dir = resolve_models_dir(args.models_dir)
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        tmp = Path(td)
        rows = bench_manifest(models_dir, args.threads, n)
        if (not rows or args.synthetic) and not args.shipped_only:
            build_synthetic(tmp / "synthetic", args.quick)
            rows += bench_manifest(tmp / "synthetic", args.threads, n)
        result["models"] = rows
        print("## Models: fp32 vs int8 (static QDQ), batch 1\n")
        print("| model | features | precision | size KiB | score | threads | mean ms "
              "| median ms | p95 ms |")
        print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['model']} | {r['features']} | {r['precision']} | {r['size_kib']:.1f} "
                  f"| {r['metric']} {r['score']:.3f} | {r['threads']} | {r['mean']:.4f} "
                  f"| {r['median']:.4f} | {r['p95']:.4f} |")
        sd = {} if args.shipped_only else {
            spec[0]: bench_static_vs_dynamic(tmp, n, args.threads, spec)
            for spec in SYNTHETIC[1:]}
        result["static_vs_dynamic"] = sd
        result["agent_wrapper"] = bench_agent_wrapper(models_dir, n)
        if (tmp / "synthetic").is_dir():
            result["agent_wrapper"] += bench_agent_wrapper(tmp / "synthetic", n)
    cols = [(t, b) for t in args.threads for b in (1, 64)]
    for spec in SYNTHETIC[1:] if sd else []:
        print(f"\n## Static QDQ vs dynamic int8: {spec[0]}, MLP {spec[1]} -> {spec[2]} -> 2 "
              f"(median ms per call)\n")
        print("| variant | size KiB | accuracy | mean abs dp vs fp32 | kernel dev | "
              + " | ".join(f"{t} thr batch {b}" for t, b in cols) + " |")
        print("|---|---:|---:|---:|---:|" + "---:|" * len(cols))
        for r in sd[spec[0]]:
            print(f"| {r['variant']} | {r['size_kib']:.1f} | {r['accuracy']:.4f} | "
                  f"{r['mean_abs_dp']:.4f} | {r['kernel_deviation']:.4f} | "
                  + " | ".join(f"{r[f't{t}_b{b}_median']:.4f}" for t, b in cols) + " |")
    if result["agent_wrapper"]:
        print("\n## agent.inference.OnnxModel.predict_proba (int8, 1 window per call)\n")
        print("| model | threads | mean ms | median ms | p95 ms |")
        print("|---|---:|---:|---:|---:|")
        for r in result["agent_wrapper"]:
            print(f"| {r['model']} | {r['threads']} | {r['mean']:.4f} | {r['median']:.4f} "
                  f"| {r['p95']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
