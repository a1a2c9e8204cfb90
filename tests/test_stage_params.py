"""Streaming stages share one shape: a frozen ``Params`` model, ``push(frames)`` and
``flush()``; options are validated (unknown names and bad values refused, naming the option
and listing the valid ones) and a stage built from a Params instance equals one built from
keyword options."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipelines import PIPELINES
from agent.runner import run_stream
from sensing.eeg.seizure import SeizureDetector, SeizureParams
from sensing.eeg.stream_features import FeatureStream, FeatureStreamParams
from sensing.params import NoParams, OptionError, Params
from sensing.simulate.csi_breathing import generate
from sensing.stage import Stage, run_stage
from sensing.wifi.breathing import BreathingEstimator, BreathingParams
from sensing.wifi.fall import (
    OPERATING_POINT_KEYS,
    FallDetector,
    FallDetectorParams,
    FallFeatureExtractor,
    FallFeatureExtractorParams,
    FallOperatingPointParams,
)
from sensing.wifi.motion import (
    MotionDetector,
    MotionDetectorParams,
    MotionScorer,
    MotionScorerParams,
)


def _never(X):
    return np.zeros(len(X))


#: stage class, its Params, extra (non-option) arguments, an option to set, a bad value.
STAGES = [
    (BreathingEstimator, BreathingParams, {}, ("window_s", 40.0), ("window_s", "abc")),
    (MotionScorer, MotionScorerParams, {}, ("window_s", 2.0), ("window_s", "abc")),
    (MotionDetector, MotionDetectorParams, {"calibration": None}, ("hold_s", 10.0),
     ("window_s", "abc")),
    (FallFeatureExtractor, FallFeatureExtractorParams, {}, ("floor_s", 30.0),
     ("window_s", "abc")),
    (FallDetector, FallDetectorParams, {}, ("threshold", 0.7), ("threshold", "abc")),
    (SeizureDetector, SeizureParams, {"predict_proba": _never}, ("min_channels", 3),
     ("window_s", "abc")),
    (FeatureStream, FeatureStreamParams, {}, ("hop_s", 0.5), ("window_s", "abc")),
]
IDS = [s[0].__name__ for s in STAGES]


@pytest.mark.parametrize(("cls", "params_cls", "args", "good", "bad"), STAGES, ids=IDS)
def test_stage_has_the_one_shape(cls, params_cls, args, good, bad):
    assert cls.Params is params_cls and issubclass(params_cls, Params)
    stage = cls(**args)
    assert isinstance(stage, Stage)
    assert stage.params == params_cls()
    with pytest.raises(Exception, match="frozen"):
        setattr(stage.params, good[0], good[1])
    for name in ("update", "process", "settings"):
        assert not hasattr(stage, name), f"{cls.__name__}.{name} left behind"
    for opt in params_cls.describe():
        assert opt["doc"] and opt["type"], opt


@pytest.mark.parametrize(("cls", "params_cls", "args", "good", "bad"), STAGES, ids=IDS)
def test_stage_refuses_an_unknown_option_listing_the_valid_ones(cls, params_cls, args, good,
                                                                bad):
    with pytest.raises(OptionError) as info:
        cls(**args, bogus=1)
    msg = str(info.value)
    assert msg.startswith(f"{cls.__name__}: unknown option 'bogus'; valid options: ")
    for name in params_cls.model_fields:
        assert f"{name} (" in msg


@pytest.mark.parametrize(("cls", "params_cls", "args", "good", "bad"), STAGES, ids=IDS)
def test_stage_refuses_a_bad_value_naming_the_option(cls, params_cls, args, good, bad):
    name, value = bad
    with pytest.raises(OptionError) as info:
        cls(**args, **{name: value})
    msg = str(info.value)
    assert msg.startswith(f"{cls.__name__}: option '{name}': expected number")
    assert 'got "abc"' in msg and "valid options: " in msg
    for field in params_cls.model_fields:
        assert f"{field} (" in msg


@pytest.mark.parametrize(("cls", "params_cls", "args", "good", "bad"), STAGES, ids=IDS)
def test_stage_from_params_equals_stage_from_options(cls, params_cls, args, good, bad):
    name, value = good
    a = cls(params_cls(**{name: value}), **args)
    b = cls(**args, **{name: value})
    c = cls(params_cls(), **args, **{name: value})  # options applied over a Params instance
    assert a.params == b.params == c.params
    assert getattr(a.params, name) == value
    assert a.params.given() == {name: value}
    with pytest.raises(TypeError, match=f"expected {params_cls.__name__}, got NoParams"):
        cls(NoParams(), **args)


def _csi(seconds: float = 40.0):
    return list(generate(chunk_packets=250, duration_s=seconds, seed=3, distance_m=1.0)[1])


def test_breathing_and_motion_results_do_not_depend_on_how_they_were_built():
    frames = _csi()
    a = run_stage(BreathingEstimator(BreathingParams(window_s=30.0, min_confidence=0.0)),
                  frames)
    b = run_stage(BreathingEstimator(window_s=30.0, min_confidence=0.0), frames)
    assert a == b and a
    m1 = run_stage(MotionDetector(MotionDetectorParams(breathing=False)), frames)
    m2 = run_stage(MotionDetector(breathing=False), frames)
    assert [repr(s) for s in m1] == [repr(s) for s in m2] and m1  # repr: NaN fields


def test_cross_option_checks_name_an_option():
    with pytest.raises(OptionError, match=r"option 'min_bpm'.*window_s=10 s holds fewer "
                                          r"than 2 cycles"):
        BreathingEstimator(window_s=10.0)
    with pytest.raises(OptionError, match=r"option 'max_bpm'.*must exceed min_bpm"):
        BreathingParams.from_options({"min_bpm": 20, "max_bpm": 10})
    with pytest.raises(OptionError, match="option 'threshold'"):
        SeizureDetector(predict_proba=_never, threshold=1.0)


def test_fall_operating_point_keys_come_from_the_params_model():
    assert OPERATING_POINT_KEYS == tuple(FallOperatingPointParams.model_fields)
    assert set(OPERATING_POINT_KEYS) < set(FallDetectorParams.model_fields)
    pipe_params = PIPELINES.get("wifi_fall").Params
    defaults = pipe_params.from_options({})
    # the pipeline's operating-point options default to None: taken from the model
    for key in OPERATING_POINT_KEYS:
        assert getattr(defaults, key) is None
        doc = {o["name"]: o["doc"] for o in pipe_params.describe()}[key]
        assert "model's operating point" in doc
    with pytest.raises(OptionError, match="option 'consecutive'"):
        pipe_params.from_options({"consecutive": 0})


def test_shared_breathing_is_keyed_by_params_without_min_confidence():
    frames = _csi(8.0)
    b = PIPELINES.get("wifi_breathing")(min_confidence=0.5)
    m = PIPELINES.get("wifi_motion")()
    run_stream(iter(frames), [b, m], [], source="s")
    ((key, stage),) = b.shared._stages.items()
    assert key == ("breathing", BreathingParams(min_confidence=0.0))
    assert stage.analysis.params.min_confidence == 0.0


def test_quiet_reasons_say_why_a_short_capture_gave_nothing():
    frames = _csi(8.0)
    b = PIPELINES.get("wifi_breathing")()
    f = PIPELINES.get("wifi_fall")(method="rule")
    stats = run_stream(iter(frames), [b, f], [], source="s")
    assert stats.quiet["wifi_breathing"] == "capture shorter than the 30 s window"
    assert stats.quiet["wifi_fall"].startswith("capture shorter than 20 s")
    alone = PIPELINES.get("wifi_breathing")()
    for fr in frames:
        alone.push(fr)
    assert alone.quiet_reason() == "capture shorter than the 30 s window"
