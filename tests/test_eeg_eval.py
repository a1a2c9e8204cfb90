"""``ambisense eval seizure``: SzCORE scoring (timescoring) and latency, against known answers."""

from __future__ import annotations

import json

import pytest
from conftest import shared_path

from agent.cli import main
from agent.commands.eval import (
    EVALUATIONS,
    evaluate_seizures,
    pair_recordings,
    read_chbmit_summary,
    read_seizures,
)
from sensing.eeg.scoring import Hypothesis, score_recording
from sensing.errors import CaptureFormatError


def test_szcore_rules_by_hand():
    ref = [(100.0, 160.0), (1000.0, 1030.0)]
    hyp = [Hypothesis(75.0, 90.0, 80.0),      # 10 s before onset: inside the 30 s tolerance
           Hypothesis(1200.0, 1210.0, 1205.0),  # 170 s after the end: false alarm
           Hypothesis(3000.0, 3020.0, 3004.0)]  # false alarm
    rep = score_recording(ref, hyp, 86400.0).as_dict()
    ev = rep["event"]
    assert ev["ref_events"] == 2 and ev["true_detections"] == 1 and ev["false_detections"] == 2
    assert ev["sensitivity"] == 0.5 and ev["precision"] == pytest.approx(1 / 3)
    assert ev["fp_per_24h"] == pytest.approx(2.0)
    assert rep["latency_s"]["median"] == -20.0  # detected 20 s before the reference onset
    # events < 90 s apart are merged, events > 5 min split
    merged = score_recording([(0, 10), (50, 60)], [Hypothesis(5, 8)], 3600).as_dict()
    assert merged["event"]["ref_events"] == 1 and merged["event"]["sensitivity"] == 1.0
    split = score_recording([(0, 700)], [Hypothesis(10, 20)], 3600).as_dict()
    assert split["event"]["ref_events"] == 3 and split["event"]["true_detections"] == 1


def test_helsinki_expert_agreement_known_answer():
    """Expert vs expert event F1 of the Helsinki neonatal annotations is about 0.82–0.84."""
    root = shared_path("eeg", "helsinki_neonatal_annotations")
    a = read_seizures(str(root / "annotations_2017_A_fixed.csv"))
    b = read_seizures(str(root / "annotations_2017_B.csv"))
    assert len(a) == len(b) == 79
    assert sum(r.duration_s for r in a.values()) / 3600 == pytest.approx(111.9, abs=0.1)
    res = evaluate_seizures(pair_recordings(a, b))
    assert 0.82 <= res["event"]["f1"] <= 0.84
    assert res["event"]["ref_events"] == 342
    assert 0.70 <= res["sample"]["f1"] <= 0.85


def test_cli_eval_jsonl_against_truth(tmp_path, capsys):
    truth = tmp_path / "rec.edf.truth.json"
    truth.write_text(json.dumps({"capture": "rec.edf", "duration_s": 3600.0, "seizures": [
        {"onset_s": 600.0, "duration_s": 40.0}, {"onset_s": 2000.0, "duration_s": 60.0}]}))
    hyp = tmp_path / "events.jsonl"
    ev = {"schema": "ambisense.event/1", "id": "x", "source": "rec.edf", "detector": "eeg_seizure",
          "ts": None, "unit": "s", "confidence": 0.9}
    lines = [
        {**ev, "type": "seizure_alert", "offset_s": 603.0, "value": None, "detected_at_s": 607.0},
        {**ev, "type": "seizure", "offset_s": 603.0, "value": 35.0, "duration_s": 35.0,
         "detected_at_s": 607.0},
        {**ev, "type": "seizure", "offset_s": 3000.0, "value": 12.0, "duration_s": 12.0,
         "detected_at_s": 3005.0},
        {**ev, "type": "breathing_rate", "offset_s": 10.0, "value": 14.0},
    ]
    hyp.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["eval", "seizure", "--ref", str(truth), "--hyp", str(hyp), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["event"]["sensitivity"] == 0.5 and out["event"]["false_detections"] == 1
    assert out["latency_s"]["median"] == 7.0 and out["latency_s"]["n"] == 1
    assert main(["eval", "seizure", "--ref", str(truth), "--hyp", str(hyp)]) == 0
    text = capsys.readouterr().out
    assert "event" in text and "latency: median 7.00 s" in text


def test_bad_jsonl_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"type": "seizure", "offset_s": 1, "duration_s": 2}\n{oops\n')
    with pytest.raises(CaptureFormatError) as ei:
        read_seizures(str(p))
    assert ei.value.where == "line 2"


def test_chbmit_summary_reference():
    p = shared_path("eeg", "chbmit_header_fixtures", "chb05", "chb05-summary.txt")
    recs = read_chbmit_summary(str(p))
    r = recs["chb05_06"]
    assert r.events == [(417.0, 532.0, None)]
    assert r.duration_s == pytest.approx(3600, abs=5)


def test_eval_is_extensible():
    assert "seizure" in EVALUATIONS.names()
