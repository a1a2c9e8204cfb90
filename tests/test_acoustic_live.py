"""Live sound card: a clear error without PortAudio, the duplex callback on synthetic
buffers, and source + record-audio end to end on a stand-in sounddevice module whose
"device" loops the speaker back into the microphone (what a phone's leakage does)."""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main as cli_main
from agent.config import load_config
from sensing.acoustic.formats import read_sidecar_probe
from sensing.acoustic.probe import probe_from_json
from sensing.acoustic.sources import DuplexCallback, SoundCardParams, SoundCardSource
from sensing.errors import SourceUnavailableError
from sensing.formats import open_capture
from sensing.sources import SOURCES

REPO = Path(__file__).resolve().parents[1]
CW = probe_from_json({"type": "cw", "tones_hz": [20000], "amplitude": 0.4})


class Flags:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_no_portaudio_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as without it
    src_cls = SOURCES.get("sound_card")
    with pytest.raises(SourceUnavailableError) as err:
        src_cls.from_params(SoundCardParams.from_options({"probe": "cw"}), "mic")
    assert str(err.value).startswith("sound card unavailable: ")
    assert "PortAudio" in str(err.value) and "\n" not in str(err.value)


def test_record_audio_without_a_device_exits_cleanly(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    rc = cli_main(["record-audio", str(tmp_path / "x.wav"), "--seconds", "1", "--probe", "cw"])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("ambisense record-audio: error: sound card unavailable")
    assert "Traceback" not in err and not (tmp_path / "x.wav").exists()


def test_callback_plays_the_probe_continuously_and_counts_flags():
    cb = DuplexCallback(CW, 48000, max_blocks=2)
    outs = []
    for i, flags in enumerate([Flags(), Flags(input_overflow=True), Flags(output_underflow=True),
                               Flags()]):
        indata = np.full((256, 1), i, np.float32)
        outdata = np.empty((256, 2), np.float32)
        t = Flags(inputBufferAdcTime=10.0, outputBufferDacTime=10.012)
        cb(indata, outdata, 256, t, flags)
        indata[:] = -1  # the callback must have copied the block
        assert np.array_equal(outdata[:, 0], outdata[:, 1])
        outs.append(outdata[:, 0].copy())
    np.testing.assert_allclose(np.concatenate(outs), CW.waveform(48000, 0, 1024), atol=1e-6)
    c = cb.snapshot()
    assert c["input_overflow"] == 1 and c["output_underflow"] == 1 and c["callbacks"] == 4
    assert c["dropped_blocks"] == 2 and c["dropped_samples"] == 512  # queue of 2 blocks
    start, block = cb.queue.get_nowait()
    assert start == 0 and np.all(block == 0)
    assert cb.queue.get_nowait()[0] == 256
    assert cb.tx_lead_s == pytest.approx(0.012)
    silent = DuplexCallback(None, 48000)
    out = np.ones((64, 1), np.float32)
    silent(np.zeros((64, 1), np.float32), out, 64, None, None)
    assert np.all(out == 0)


def fake_sounddevice(lag=1500, leak=0.5, unplug_after=None, overflow_every=None,
                     usable_opens=None):
    """A stand-in ``sounddevice``: one duplex device whose microphone hears the speaker
    ``lag`` samples (≥ the block size, as on real hardware) later, attenuated, with a
    little noise. ``unplug_after`` blocks, the stream stops by itself (a USB sound card
    pulled out); every ``overflow_every``-th callback reports an input overflow; after
    ``usable_opens`` streams, opening one fails (the card stays away)."""
    mod = types.ModuleType("sounddevice")

    class PortAudioError(Exception):
        pass

    opened: list[int] = []
    devices = [{"name": "Fake USB Audio", "index": 0, "max_input_channels": 2,
                "max_output_channels": 2}]

    def query_devices(device=None, kind=None):
        if kind is None:
            return devices
        if device in (None, 0) or (isinstance(device, str) and device in devices[0]["name"]):
            return devices[0]
        raise ValueError(f"No {kind} device matching {device!r}")

    class Stream:
        def __init__(self, samplerate, blocksize, device, channels, dtype, latency, callback):
            opened.append(1)
            if usable_opens is not None and len(opened) > usable_opens:
                raise PortAudioError("Error opening Stream: Device unavailable [PaErrorCode -9985]")
            self.fs, self.bs = samplerate, blocksize or 512
            self.ch_in, self.ch_out = channels if isinstance(channels, tuple) else (channels, 0)
            self.callback, self.active, self.latency = callback, False, (0.01, 0.01)
            self._thread = None

        def start(self):
            self.active = True
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

        def _run(self):
            try:
                self._loop()
            finally:
                self.active = False  # a callback that raised stops the stream, as PortAudio

        def _loop(self):
            played = np.zeros(lag)  # played[i]: output sample i - lag
            rng = np.random.default_rng(0)
            k = 0
            while self.active:
                if unplug_after is not None and k >= unplug_after:
                    self.active = False  # the device is gone: PortAudio stops the stream
                    break
                status = (Flags(input_overflow=True)
                          if overflow_every and k % overflow_every == overflow_every - 1
                          else Flags())
                heard = played[k * self.bs:(k + 1) * self.bs]
                indata = (leak * heard[:, None] + 1e-4 * rng.standard_normal((self.bs, self.ch_in))
                          ).astype(np.float32)
                t = Flags(inputBufferAdcTime=1.0 + k * self.bs / self.fs,
                          outputBufferDacTime=1.0 + (k * self.bs + lag) / self.fs)
                if self.ch_out:
                    out = np.zeros((self.bs, self.ch_out), np.float32)
                    self.callback(indata, out, self.bs, t, status)
                    played = np.concatenate([played, out[:, 0]])
                else:
                    self.callback(indata, self.bs, t, status)
                    played = np.concatenate([played, np.zeros(self.bs)])
                k += 1
                time.sleep(0.0005)

        def stop(self):
            self.active = False
            if self._thread is not None:
                self._thread.join()

        def close(self):
            pass

    def InputStream(samplerate, blocksize, device, channels, dtype, latency, callback):  # noqa: N802
        return Stream(samplerate, blocksize, device, channels, dtype, latency, callback)

    mod.PortAudioError = PortAudioError
    mod.query_devices = query_devices
    mod.Stream = Stream
    mod.InputStream = InputStream
    return mod


def test_source_streams_audio_chunks_with_the_played_probe(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice())
    params = SoundCardParams.from_options({"device": "USB", "probe": "cw", "tones_hz": [20000],
                                           "amplitude": 0.4, "blocksize": 512})
    src = SOURCES.get("sound_card").from_params(params, "mic")
    got: list = []
    for fr in src.chunks(stop=lambda: sum(len(f) for f in got) >= 48000):
        got.append(fr)
    assert got[0].modality == "audio" and got[0].fs_hz == 48000 and got[0].data.shape[1] == 1
    times = np.concatenate([f.times_s for f in got])
    np.testing.assert_allclose(times, np.arange(len(times)) / 48000)
    assert got[-1].meta["probe"]["type"] == "cw"
    assert got[-1].meta["tx_lead_s"] == pytest.approx(1500 / 48000)
    assert got[-1].meta["probe"]["start_s"] == pytest.approx(1500 / 48000)
    assert "xruns" in got[-1].meta and src.counters["callbacks"] >= len(got)
    x = np.concatenate([f.data[:, 0] for f in got])
    # the loop-back hears the probe 1500 samples later
    np.testing.assert_allclose(x[1500:6000], 0.5 * CW.waveform(48000, 0, 4500), atol=1e-3)
    with pytest.raises(SourceUnavailableError, match="no input device 'Nope'.*Fake USB Audio"):
        SoundCardSource(SoundCardParams.from_options({"device": "Nope"}), "x").open()


def test_a_sound_card_pulled_out_mid_stream_is_counted_and_reopened(monkeypatch, tmp_path,
                                                                   capsys, caplog):
    """The card disappears after 40 blocks each time it is opened, and reports input
    overflows meanwhile: the source ends with SourceUnavailableError, the overflows are
    counted, and the agent's supervisor reopens it with backoff (here up to 2 times) while
    the stream clock continues."""
    monkeypatch.setitem(sys.modules, "sounddevice",
                        fake_sounddevice(unplug_after=40, overflow_every=10))
    params = SoundCardParams.from_options({"device": "USB", "probe": "cw", "tones_hz": [20000],
                                           "blocksize": 512})
    src = SOURCES.get("sound_card").from_params(params, "mic")
    got = []
    with pytest.raises(SourceUnavailableError, match="sound card: the stream stopped"):
        for fr in src.chunks(stop=lambda: False):
            got.append(fr)
    assert sum(len(f) for f in got) == 40 * 512
    assert src.counters["input_overflow"] == 4
    src.close()
    # in the agent: pulled out three times (each time it came back with data, so the
    # backoff restarted), then gone for good: two failed reopenings and the agent gives up
    monkeypatch.setitem(sys.modules, "sounddevice",
                        fake_sounddevice(unplug_after=40, overflow_every=10, usable_opens=3))
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[agent]\nname = "car"\n[[sources]]\ntype = "sound_card"\nname = "cabin"\n'
                   'device = "USB"\nprobe = "cw"\ntones_hz = [20000]\nblocksize = 512\n'
                   'pipelines = ["acoustic_cw_motion"]\n'
                   'restart = { initial_s = 0.05, max_s = 0.1, max_restarts = 2 }\n'
                   '[sinks]\nconsole = "off"\n')
    assert cli_main(["agent", "--config", str(cfg)]) == 1  # gave up after 2 reopenings
    err = capsys.readouterr().err
    assert "cabin: failed, 61440 frames, 0 rejects, 0 drops, 4 restarts" in err, err
    assert caplog.text.count("the stream stopped (device unplugged?)") == 3
    assert "Device unavailable" in caplog.text and "giving up after 2 restarts" in caplog.text


@pytest.mark.parametrize("sigmf", [False, True])
def test_record_audio_writes_what_replay_reads(monkeypatch, tmp_path, capsys, sigmf):
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice())
    out = tmp_path / ("rec" if sigmf else "rec.wav")
    argv = ["record-audio", str(out), "--seconds", "2", "--probe", "cw", "--tones-hz", "20000",
            "--device", "0", "--blocksize", "1024"] + (["--sigmf"] if sigmf else [])
    assert cli_main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 96000 and summary["format"] == ("sigmf" if sigmf else "wav")
    path = tmp_path / "rec.sigmf-meta" if sigmf else out
    reader = open_capture(path)
    chunks = list(reader.chunks())
    assert sum(len(c) for c in chunks) == 96000 and reader.rejects.total == 0
    probe = chunks[0].meta["probe"]
    assert probe["type"] == "cw" and probe["tones_hz"] == [20000.0]
    assert probe["start_s"] == pytest.approx(1500 / 48000)  # the measured TX lead
    if not sigmf:
        assert read_sidecar_probe(out).tones_hz == (20000.0,)
    # and the recording replays through the CW pipeline (probe declared → cw_sonar)
    assert cli_main(["replay", str(path), "--jsonl", "--no-progress"]) == 0


def test_example_agent_config_validates():
    path = REPO / "firmware_configs" / "acoustic" / "agent-sound-card.toml"
    loaded = load_config(path, env={})
    (src,) = loaded.config.sources
    assert src.type == "sound_card" and src.probe == "cw" and src.tones_hz == [20000.0]
    for name in ("probe-cw-20k.json", "probe-fmcw-18-22k.json"):
        obj = json.loads((path.parent / name).read_text())
        probe_from_json(obj["ambisense:probe"], where=name).check_rate(48000)
