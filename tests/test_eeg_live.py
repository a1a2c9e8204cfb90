"""Live EEG: following a growing EDF file; the eeg-seizure simulator (EDF+ and truth)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from agent.cli import main
from sensing.errors import CaptureFormatError
from sensing.formats import open_capture
from sensing.formats.edf.writer import EdfWriter
from sensing.simulate import SIMULATORS, load_truth
from sensing.sources.edf_follow import EdfFollowSource


def test_follow_growing_edf_matches_finished_file(tmp_path):
    p = tmp_path / "growing.edf"
    rng = np.random.default_rng(1)
    x = rng.normal(0, 40, (256 * 10, 4))
    started = threading.Event()

    def recorder():
        with EdfWriter(p, ["Fp1", "Fp2", "T8-P8", "T8-P8"], 256.0) as w:
            started.set()
            for a in range(0, len(x), 256):
                w.write(x[a: a + 256])
                time.sleep(0.02)

    th = threading.Thread(target=recorder)
    th.start()
    started.wait(5)
    src = EdfFollowSource(p, poll_s=0.005, idle_timeout_s=10.0, records_per_chunk=2)
    chunks = list(src.chunks())  # ends when the recorder writes the record count on close
    th.join()
    y = np.concatenate([c.data for c in chunks])
    ref = np.concatenate([c.data for c in open_capture(p).chunks()])
    assert y.shape == ref.shape == (2560, 3)  # duplicate T8-P8 kept once, like the file reader
    np.testing.assert_allclose(y, ref, atol=1e-9)
    t = np.concatenate([c.times_s for c in chunks])
    np.testing.assert_allclose(t, np.arange(2560) / 256.0)
    assert len(chunks) >= 5 and all(len(c) <= 512 for c in chunks)


def test_follow_stops_on_close_and_idle(tmp_path):
    p = tmp_path / "idle.edf"
    w = EdfWriter(p, ["Cz"], 128.0)
    w.write(np.zeros((128 * 2, 1)))  # 2 records, never closed
    src = EdfFollowSource(p, poll_s=0.01, idle_timeout_s=0.2)
    assert sum(len(c) for c in src.chunks()) == 256
    src2 = EdfFollowSource(p, poll_s=0.01)
    it = src2.chunks()
    next(it)
    src2.close()
    assert list(it) == []
    w.close()


def test_follow_rejects_broken_header(tmp_path):
    p = tmp_path / "bad.edf"
    with EdfWriter(p, ["Cz"], 128.0) as w:
        w.write(np.zeros((128, 1)))
    raw = bytearray(p.read_bytes())
    raw[236 + 8: 244 + 8] = b"abc     "  # record duration not a number
    p.write_bytes(bytes(raw))
    with pytest.raises(CaptureFormatError, match="byte 244"):
        list(EdfFollowSource(p, poll_s=0.01, header_timeout_s=0.1).chunks())


def test_simulator_writes_edf_plus_with_truth(tmp_path):
    out = tmp_path / "sim.edf"
    truth = SIMULATORS.get("eeg-seizure")(out, seed=5, duration_s=240.0, fs_hz=128.0,
                                          layout="referential", n_seizures=1, n_artefacts=4)
    assert load_truth(out) == truth
    assert truth["n_seizures"] == 1 and len(truth["artefacts"]) == 4
    r = open_capture(out, montage="double_banana")
    assert r.fs_hz == 128.0 and len(r.montage.names) == 18
    ann = r.annotations()
    sz = [a for a in ann if a["text"] == "seizure"]
    assert sz[0]["onset_s"] == pytest.approx(truth["seizures"][0]["onset_s"], abs=1e-3)
    info = r.info()
    assert info["duration_s"] == pytest.approx(240.0, abs=0.01)
    # same seed, same bytes
    out2 = tmp_path / "sim2.edf"
    SIMULATORS.get("eeg-seizure")(out2, seed=5, duration_s=240.0, fs_hz=128.0,
                                  layout="referential", n_seizures=1, n_artefacts=4)
    assert out.read_bytes() == out2.read_bytes()


def test_cli_simulate_then_eval_edf_annotations(tmp_path, capsys):
    out = tmp_path / "cli.edf"
    assert main(["simulate", "eeg-seizure", "--out", str(out), "--duration-s", "200",
                 "--fs-hz", "128", "--layout", "neonatal", "--n-seizures", "1"]) == 0
    capsys.readouterr()
    # the EDF+ annotations are a reference as good as the truth sidecar
    assert main(["eval", "seizure", "--ref", str(out), "--hyp", str(out) + ".truth.json",
                 "--json"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)
    assert res["event"]["f1"] == 1.0 and res["sample"]["f1"] > 0.95
