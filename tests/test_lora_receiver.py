"""The LoRa PHY: encoder against gr-lora_sdr's reference transmissions, the receiver on the
real reference frames and on simulated frames with noise, CFO and clock offsets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensing.formats import open_capture
from sensing.frames import Frames
from sensing.lora import modem
from sensing.lora.receiver import LoraReceiver
from sensing.simulate import SIMULATORS
from tests.conftest import SHARED_DATA

REF = SHARED_DATA / "lora" / "gr-lora_sdr-qa-ref"
REF_SFS = (7, 8, 9, 10)


def _ref(sf: int):
    path = REF / f"ref_tx_sf{sf}_cr2.bin"
    if not path.exists():
        pytest.skip(f"shared data absent: {path} (gr-lora_sdr reference frames)")
    payload = (REF / "example_tx_source.txt").read_text().split(",")[0].encode()
    return path, payload


def _receive(chunks, **kw):
    rx = LoraReceiver(**kw)
    out = []
    for fr in chunks:
        out += rx.push(fr)
    return out + rx.flush(), rx


def _frames(iq: np.ndarray, fs: float, lora: dict, chunk: int = 1 << 15, center_hz=None):
    iq = iq if iq.ndim == 2 else iq[:, None]
    meta = {"format": "test", "lora": lora, "soil": None, "center_hz": center_hz}
    for i in range(0, len(iq), chunk):
        part = iq[i: i + chunk].astype(np.complex64)
        yield Frames(data=part, times_s=(i + np.arange(len(part))) / fs, fs_hz=fs,
                     modality="lora_iq", source="t", meta=dict(meta))


@pytest.mark.parametrize("sf", REF_SFS)
def test_encoder_reproduces_the_reference_waveform(sf):
    path, payload = _ref(sf)
    ref = np.fromfile(path, np.complex64)
    ours = modem.frame_iq(payload, sf, 2, os=4, sync_word=0x12, preamble_len=8, ldro=False)
    assert np.abs(ref[: len(ours)] - ours).max() < 1e-3
    assert np.abs(ref[len(ours):]).max() == 0  # then the zero gap


@pytest.mark.parametrize("sf", REF_SFS)
def test_every_reference_frame_decodes_with_valid_crc(sf):
    path, payload = _ref(sf)
    reader = open_capture(path, format="lora_raw", fs_hz=500e3, bw_hz=125000, sf=sf)
    found, rx = _receive(reader)
    assert [(f.payload, f.crc_ok, f.sf, f.cr) for f in found] == [(payload, True, sf, 2)]
    f = found[0]
    assert abs(f.cfo_hz) < 5 and f.start_s == pytest.approx(0, abs=2 / 500e3)
    assert f.snr_db > 10  # noiseless


@pytest.mark.parametrize("sf", range(7, 13))
@pytest.mark.parametrize("cr", range(1, 5))
def test_symbol_round_trip_every_sf_and_cr(sf, cr):
    rng = np.random.default_rng(sf * 10 + cr)
    for length, ldro, implicit in ((1, False, False), (23, sf >= 11, False), (40, True, True)):
        payload = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        syms = modem.encode_symbols(payload, sf, cr, ldro=ldro, implicit_header=implicit)
        assert len(syms) == modem.n_payload_symbols(length, sf, cr, ldro=ldro,
                                                    implicit_header=implicit)
        assert syms.min() >= 0 and syms.max() < 1 << sf
        dec = modem.decode_symbols(syms, sf, ldro=ldro, implicit_header=implicit,
                                   payload_len=length, cr=cr)
        assert dec.payload == payload and dec.crc_ok and dec.cr == cr
        # one symbol off by one bin in the header block is still a multiple of 4 away
        bad = syms.copy()
        bad[3] = (bad[3] + 1) % (1 << sf)
        assert modem.decode_symbols(bad, sf, ldro=ldro, implicit_header=implicit,
                                    payload_len=length, cr=cr).payload == payload
        if cr >= 3:  # 4/7 and 4/8 correct one bit per codeword: one wrong bin is fixed
            bad = syms.copy()
            bad[-1] = (bad[-1] + 1) % (1 << sf)
            assert modem.decode_symbols(bad, sf, ldro=ldro, implicit_header=implicit,
                                        payload_len=length, cr=cr).crc_ok
    wrong = syms.copy()
    wrong[8:] = (wrong[8:] + 17) % (1 << sf)
    assert not modem.decode_symbols(wrong, sf, ldro=True, implicit_header=True,
                                    payload_len=40, cr=cr).crc_ok


@pytest.mark.parametrize("sf,cr", [(7, 1), (8, 2), (9, 3), (10, 4), (11, 1), (12, 2)])
def test_waveform_round_trip_with_cfo_sco_noise(sf, cr):
    """Simulated frames (carrier offset, clock offset from one crystal, random start,
    noise 5 dB above each SF's limit) decode exactly; bandwidths and rates vary."""
    limit = {7: -7.5, 8: -10, 9: -12.5, 10: -15, 11: -17.5, 12: -20}[sf]
    bw = 500000 if sf >= 11 else 125000  # keeps the long symbols of SF11/12 short
    from sensing.lora.simulators.packets import LoraPacketsParams, packets_iq

    p = LoraPacketsParams(sf=sf, cr=cr, bw_hz=bw, fs_hz=2.0 * bw, n_packets=2,
                          payload_len=10, snr_db=limit + 5, ppm=-18.0, seed=sf,
                          gap_s=0.002, center_hz=868.1e6)
    iq, truth = packets_iq(p, np.random.default_rng(sf))
    lora = {"sf": sf, "bw_hz": bw, "cr": cr}
    found, rx = _receive(_frames(iq, p.fs_hz, lora, center_hz=868.1e6))
    got = [(f.payload.hex(), f.crc_ok) for f in found]
    assert got == [(t["payload_hex"], True) for t in truth]
    for f, t in zip(found, truth, strict=True):
        assert f.cfo_hz == pytest.approx(t["cfo_hz"], abs=0.05 * bw / (1 << sf))
        assert f.start_s == pytest.approx(t["start_s"], abs=2 / bw)
        assert f.snr_db == pytest.approx(limit + 5, abs=1.5)


def test_clock_offset_without_centre_frequency_is_tracked():
    """No centre frequency: the clock offset is found from the symbols' drift (40 ppm: the
    carrier offset of such a crystal at 868 MHz would exceed bw/4, so most of it is
    removed as an offset of another origin)."""
    from sensing.lora.simulators.packets import LoraPacketsParams, packets_iq

    p = LoraPacketsParams(sf=10, cr=4, fs_hz=250e3, n_packets=1, payload_len=60,
                          snr_db=5.0, ppm=40.0, extra_cfo_hz=-30e3, seed=3, gap_s=0.01)
    iq, truth = packets_iq(p, np.random.default_rng(3))
    found, _ = _receive(_frames(iq, p.fs_hz, {"sf": 10}), sco_from_cfo=False)
    assert [(f.payload.hex(), f.crc_ok) for f in found] == [(truth[0]["payload_hex"], True)]
    assert found[0].sco_ppm == pytest.approx(40, abs=10)


def test_near_the_demodulation_limit():
    from sensing.lora.simulators.packets import LoraPacketsParams, packets_iq

    p = LoraPacketsParams(sf=8, cr=1, fs_hz=250e3, n_packets=10, payload_len=16,
                          snr_db=-9.0, ppm=12.0, seed=11, gap_s=0.01)
    iq, truth = packets_iq(p, np.random.default_rng(11))
    found, _ = _receive(_frames(iq, p.fs_hz, {"sf": 8}, center_hz=868.1e6))
    ok = {f.payload.hex() for f in found if f.crc_ok}
    assert len(ok & {t["payload_hex"] for t in truth}) >= 8
    assert ok <= {t["payload_hex"] for t in truth}  # no false frame with a valid CRC


def test_chunking_does_not_change_results_and_noise_gives_nothing():
    from sensing.lora.simulators.packets import LoraPacketsParams, packets_iq

    p = LoraPacketsParams(sf=7, cr=3, fs_hz=500e3, n_packets=3, snr_db=0.0, seed=5,
                          channels=2)
    iq, _ = packets_iq(p, np.random.default_rng(5))
    runs = [_receive(_frames(iq, p.fs_hz, {"sf": 7}, chunk=c))[0] for c in (997, 1 << 16)]
    assert len(runs[0]) == 3
    for a, b in zip(*runs, strict=True):
        assert a.payload == b.payload and a.start_s == b.start_s
        np.testing.assert_allclose(a.amplitudes, b.amplitudes, rtol=1e-4, atol=1e-6)
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal((1_000_000, 1)) + 1j * rng.standard_normal((1_000_000, 1)))
    found, rx = _receive(_frames(noise, 500e3, {"sf": 7}, chunk=1 << 14))
    assert found == []
    # bounded memory: what is kept is the preamble search window, not the stream
    assert len(rx.raw) <= (8 + 12) * 128 * 4 + (1 << 14)
    assert len(rx.chips) <= (8 + 12) * 128 + (1 << 14) // 4


def test_per_chirp_amplitudes_carry_the_channel_ratio():
    """Two antennas of one receiver: the ratio of their chirps' complex amplitudes is the
    ratio of the channels (offsets cancel)."""
    x = modem.frame_iq(b"hello", 8, 1, os=2)
    x = np.concatenate([np.zeros(3000), x, np.zeros(3000)])
    t = np.arange(len(x)) / 250e3
    x = x * np.exp(2j * np.pi * 3100.0 * t)  # carrier offset
    ratio = 0.5 * np.exp(0.7j)
    iq = np.stack([x, ratio * x], axis=1)
    found, _ = _receive(_frames(iq, 250e3, {"sf": 8}))
    (f,) = found
    assert f.crc_ok and f.payload == b"hello"
    got = f.amplitudes[:, 1] / f.amplitudes[:, 0]
    np.testing.assert_allclose(got, ratio, rtol=1e-3)
    pre = f.preamble_amplitudes[:, 1] / f.preamble_amplitudes[:, 0]
    np.testing.assert_allclose(pre, ratio, rtol=1e-3)
    assert len(f.preamble_amplitudes) == 7 and np.all(np.diff(f.preamble_times_s) > 0)
    assert abs(np.abs(f.amplitudes[:, 0]).mean() - 1) < 0.1


def test_cli_replay_of_a_simulated_recording(tmp_path, capsys):
    from agent.cli import main

    out = tmp_path / "sim"
    truth = SIMULATORS.get("lora-packets")(out, sf=9, n_packets=2, snr_db=-5.0, seed=4,
                                           channels=2, datatype="ci16_le", gap_s=0.02)
    capsys.readouterr()
    rc = main(["replay", f"{out}.sigmf-meta", "--jsonl", "--no-progress",
               "--pipeline", "lora_packet"])
    res = capsys.readouterr()
    assert rc == 0, res.err
    events = [json.loads(line) for line in res.out.splitlines()]
    assert [e["payload_hex"] for e in events] == [p["payload_hex"] for p in truth["packets"]]
    for e in events:
        assert e["type"] == "lora_packet" and e["crc_ok"] is True and e["sf"] == 9
        assert e["value"] == 16 and e["unit"] == "B"
        assert e["cfo_hz"] == pytest.approx(truth["packets"][0]["cfo_hz"], abs=20)
        assert -7 < e["snr_db"] < -3 and "rssi_db" in e
