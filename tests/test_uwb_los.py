"""LOS/NLOS from CIR shape and first-path level, on the real Kolakowski 2018 DW1000 logs
(labels from their labels.csv) and on synthetic CIRs."""

from __future__ import annotations

import numpy as np
import pytest

from sensing.formats import open_capture
from sensing.frames import Frames
from sensing.uwb.los import FEATURES, LinkStateClassifier, LosParams, classify, frames_features
from tests.conftest import shared_path
from tests.test_uwb_breathing import pulse

LOGS = {"40.log": False, "14.log": False, "34.log": False, "6.log": True, "37.log": True,
        "4.log": True, "51.log": True}  # True = NLOS (NLOS and NDP NLOS)


def _load():
    folder = shared_path("uwb", "kolakowski-uwb-cirs-2018", "results")
    X, y, g = [], [], []
    for name, nlos in LOGS.items():
        last = float("nan")
        for fr in open_capture(folder / name):
            X.append(frames_features(fr, last))
            d = fr.fields["distance_m"][np.isfinite(fr.fields["distance_m"])]
            last = float(d[-1]) if len(d) else last
            y += [nlos] * len(fr)
            g += [name] * len(fr)
    return np.concatenate(X), np.array(y), np.array(g)


def test_features_are_finite_and_physical():
    X, y, g = _load()
    assert X.shape == (1486, len(FEATURES))
    shape = X[:, :8]
    assert np.isfinite(shape).all()
    assert (X[:, FEATURES.index("fp_to_peak_db")] <= 1e-9).all()
    assert np.isfinite(X[:, FEATURES.index("fp_level_1m_dbm")]).mean() > 0.99
    # NDP NLOS (no direct path): a much weaker first path against the peak than LOS
    fp = X[:, FEATURES.index("fp_to_peak_db")]
    assert np.median(fp[g == "4.log"]) < np.median(fp[~y]) - 6


def test_rule_leave_one_log_out():
    """Each log scored with the first-path-level threshold fitted on the other six."""
    X, y, g = _load()
    lvl = X[:, FEATURES.index("fp_level_1m_dbm")]
    grid = np.arange(-90.0, -65.0, 0.25)
    correct = total = 0
    for name in LOGS:
        tr, te = g != name, g == name

        def bacc(thr, tr=tr):
            p = lvl[tr] < thr
            return 0.5 * (p[y[tr]].mean() + (~p[~y[tr]]).mean())

        thr = max(grid, key=bacc)
        params = LosParams(fp_level_nlos_dbm=float(thr))
        pred = classify(X[te], params)
        correct += int((pred == y[te]).sum())
        total += int(te.sum())
        assert (pred == y[te]).mean() > 0.9, name
    assert correct / total > 0.97


def test_link_state_windows_on_real_logs():
    folder = shared_path("uwb", "kolakowski-uwb-cirs-2018", "results")
    for name, nlos in LOGS.items():
        clf = LinkStateClassifier()
        out = []
        for fr in open_capture(folder / name, chunk_size=17):
            out += clf.push(fr)
        out += clf.flush()
        assert len(out) >= 5
        states = [s for _, s, _, _ in out]
        assert states.count("nlos" if nlos else "los") / len(states) > 0.8, (name, states)


def test_shape_rule_on_synthetic_cirs():
    """Without ranging: a strong early direct path is LOS; a weak one before a strong late
    echo (through a wall, or no direct path) is NLOS."""
    taps = np.arange(1016.0)
    rng = np.random.default_rng(0)

    def cir(direct, echo_at):
        row = direct * pulse(taps, 745.2) + 1.0 * pulse(taps, 745.2 + echo_at)
        return row + 0.002 * (rng.standard_normal(1016) + 1j * rng.standard_normal(1016))

    x = np.stack([cir(1.5, 6), cir(1.2, 3), cir(0.05, 8), cir(0.2, 12)]).astype(np.complex64)
    fr = Frames(data=x * 1000, times_s=np.arange(4.0), fs_hz=1.0, modality="uwb_cir",
                source="s", fields={"first_path_index": np.full(4, 745.2)})
    assert classify(frames_features(fr)).tolist() == [False, False, True, True]


@pytest.mark.parametrize("window_s", [5.0, 20.0])
def test_link_state_is_chunk_invariant(window_s):
    folder = shared_path("uwb", "kolakowski-uwb-cirs-2018", "results")
    res = []
    for size in (5, 300):
        clf = LinkStateClassifier(window_s=window_s)
        out = []
        for fr in open_capture(folder / "37.log", chunk_size=size):
            out += clf.push(fr)
        res.append(out + clf.flush())
    assert res[0] == res[1]


def test_rule_features_are_the_columns_the_rule_reads():
    from sensing.uwb.los import cir_features, rule_features

    rng = np.random.default_rng(3)
    taps = np.arange(1016.0)
    x = np.stack([pulse(taps, 745.0 + rng.uniform(0, 1)) * rng.uniform(0.05, 1.5)
                  + 0.5 * pulse(taps, 745.0 + rng.uniform(2, 12)) for _ in range(40)])
    x = (x + 0.01 * rng.standard_normal(x.shape)).astype(np.complex64) * 1000
    fp = rng.uniform(744.5, 746, 40)
    fp[3] = np.nan                                         # detected instead
    fsl = rng.uniform(-95, -80, 40)
    dist = np.where(np.arange(40) % 2, np.nan, rng.uniform(1, 6, 40))
    acc = rng.integers(600, 1000, 40)
    full = cir_features(x, fp, acc, fsl - 3, fsl, distance_m=dist)
    rule = rule_features(x, fp, acc, fsl, dist)
    used = [FEATURES.index(k) for k in ("fp_to_peak_db", "peak_delay_taps", "fp_level_1m_dbm")]
    np.testing.assert_array_equal(rule[:, used], full[:, used])
    assert np.isnan(np.delete(rule, used, axis=1)).all()
    np.testing.assert_array_equal(classify(rule), classify(full))
