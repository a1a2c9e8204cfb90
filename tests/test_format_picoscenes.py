"""PicoScenes ``.csi`` reader: every real file against csiread and CSIKit reference parses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sensing.formats import detect_format
from sensing.formats.picoscenes import (
    DATA_TONES,
    MVM_BATCH_BYTES,
    TONE_PLANS,
    PicoScenesReader,
    _chunk_bounds,
    iwl5300_rx_order,
    mvm_unpack,
    segment_layout,
)
from sensing.frames import Frames
from tests.conftest import assert_same_chunks, shared_path

FILES = {
    "csikit-picoscenes/picoscenes_iwl5300_example.csi": ("iwl5300", 112),
    "csikit-picoscenes/picoscenes_ax200_example.csi": ("ax200", 885),
    "csiread/rx_by_iwl5300.csi": ("iwl5300", 383),
    "csiread/rx_by_qca9300.csi": ("qca9300", 1000),
}


def read_all(path, **kw):
    reader = PicoScenesReader(path, **kw)
    chunks = list(reader)
    fields = {k: np.concatenate([c.fields[k] for c in chunks]) for k in chunks[0].fields}
    rows = [c.data[i] for c in chunks for i in range(len(c))]
    return reader, chunks, fields, rows


@pytest.mark.parametrize("rel", sorted(FILES))
def test_matches_reference_parses(rel):
    path = shared_path("csi", *rel.split("/"))
    chip, n = FILES[rel]
    ref = np.load(f"{path}.ref.npz")
    assert detect_format(path) is PicoScenesReader
    reader, chunks, f, rows = read_all(path)
    assert len(rows) == n == int(ref["csiread_n"]) == int(ref["csikit_n"])
    assert reader.rejects.total == 0
    for ref_key, ours in (("rssi", "rssi"), ("noisefloor", "noise_floor"), ("cbw", "cbw"),
                          ("timestamp", "timestamp"), ("carrierfreq", "carrier_freq"),
                          ("packetformat", "packet_format"), ("numrx", "Nrx")):
        np.testing.assert_array_equal(f[ours].astype(np.int64),
                                      ref[f"csiread_{ref_key}"].astype(np.int64), err_msg=ours)
    has_seq = f["seq"] >= 0  # control frames (no sequence-control field) get -1
    np.testing.assert_array_equal(f["seq"][has_seq], ref["csiread_seq"][has_seq])
    assert (f["packet_format"][~has_seq] == 0).all()
    # times: RxSBasic timestamp, or the MVM muClock for AX200 — as CSIKit
    times = np.concatenate([c.times_s for c in chunks])
    np.testing.assert_allclose(times, ref["csikit_timestamps"], atol=1e-6)
    assert f["time_valid"].all()
    info = reader.info()
    assert info["chip"] == chip and info["bandwidth_mhz"] == 20 and info["frames"] == n


@pytest.mark.parametrize("rel", ["csikit-picoscenes/picoscenes_iwl5300_example.csi",
                                 "csiread/rx_by_iwl5300.csi", "csiread/rx_by_qca9300.csi"])
def test_csi_equals_csiread(rel):
    path = shared_path("csi", *rel.split("/"))
    ref = np.load(f"{path}.ref.npz")
    _, _, _, rows = read_all(path)
    head = ref["csiread_csi_head"]
    for ours, theirs in zip(rows[:5], head, strict=True):
        r, t = ours.shape[1:]
        np.testing.assert_array_equal(ours, theirs[: ours.shape[0], :r, :t])
        assert not theirs[:, r:, :].any() and not theirs[:, :, t:].any()


def test_qca9300_csikit_adds_one_plus_one_j():
    path = shared_path("csi", "csiread", "rx_by_qca9300.csi")
    ref = np.load(f"{path}.ref.npz")
    _, chunks, _, rows = read_all(path)
    assert chunks[0].data.shape[1:] == (56, 3, 1)
    np.testing.assert_array_equal(chunks[0].subcarriers, np.r_[-28:0, 1:29])
    ck = ref["csikit_csi_head"]  # (56, 1, 3): tx before rx, and +1+1j on every value
    np.testing.assert_array_equal(np.stack(rows[:5]) + (1 + 1j), ck.transpose(0, 1, 3, 2))


def test_ax200_data_tones_equal_csikit_without_pilots():
    """The PicoScenes parser drops the 4 HT20 pilots per rx/tx stream; CSIKit keeps all 56
    tones. (csiread drops a different set of positions, so it disagrees on every frame.)"""
    path = shared_path("csi", "csikit-picoscenes", "picoscenes_ax200_example.csi")
    ref = np.load(f"{path}.ref.npz")
    _, chunks, f, rows = read_all(path)
    tones, pilots = TONE_PLANS[(1, 20)]
    keep = ~np.isin(tones, pilots)
    np.testing.assert_array_equal(chunks[0].subcarriers, tones[keep])
    np.testing.assert_array_equal(np.stack(rows[:5]), ref["csikit_csi_head"][:, keep])
    np.testing.assert_array_equal(rows[0][:7, 0], ref["csiread_csi_head"][0, :7, 0])
    # non-HT frames (107) carry 52 tones of which 48 are data
    shapes = {c.data.shape[1] for c in chunks}
    assert shapes == {52, 48}
    assert sum(len(c) for c in chunks if c.data.shape[1] == 48) == 107


def test_iwl5300_antenna_selection_rule():
    # PicoScenes: v = [(s & 1) + 1, ((s >> 2) & 3) + 1, ((s >> 4) & 3) + 1]; slot = rank(v)
    assert iwl5300_rx_order(18, 3) is None          # v = [1, 1, 2]: stable ranks 0, 1, 2
    # v = [2, 2, 1]: ranks 1, 2, 0 → slot 0 takes chain 2, slot 1 chain 0, slot 2 chain 1
    np.testing.assert_array_equal(iwl5300_rx_order(0b000101, 3), [2, 0, 1])
    assert iwl5300_rx_order(6, 1) is None
    path = shared_path("csi", "csiread", "rx_by_iwl5300.csi")
    _, _, f, _ = read_all(path)
    three = f["Nrx"] == 3
    assert three.sum() == 12 and (f["ant_sel"][three] == 18).all()


def test_pad_to_and_layout_chunks():
    path = shared_path("csi", "csiread", "rx_by_iwl5300.csi")
    _, chunks, f, _ = read_all(path)
    for c in chunks:
        assert (c.fields["Nrx"] == c.data.shape[2]).all()
        assert (c.fields["Ntx"] == c.data.shape[3]).all()
    _, padded, _, _ = read_all(path, pad_to=(3, 2), chunk_size=100)
    assert {c.data.shape[1:] for c in padded} == {(30, 3, 2)}
    assert [len(c) for c in padded] == [100, 100, 100, 83]


def frames_of(blob: bytes) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos + 4 <= len(blob):
        size = 4 + int.from_bytes(blob[pos:pos + 4], "little")
        out.append((pos, size))
        pos += size
    return out


def test_broken_frames_are_counted_rejects(tmp_path):
    blob = bytearray(shared_path("csi", "csikit-picoscenes",
                                 "picoscenes_iwl5300_example.csi").read_bytes())
    fr = frames_of(bytes(blob))
    blob[fr[5][0] + 4] ^= 0xFF  # magic of frame 5
    lay = segment_layout(bytes(blob[fr[7][0]: fr[7][0] + fr[7][1]]))
    csi_body = next(b for name, _, b, _, _ in lay if name == "CSI")
    blob[fr[7][0] + csi_body + 28] = 9  # frame 7: numRx 9 → bad dimensions
    path = tmp_path / "broken.csi"
    path.write_bytes(bytes(blob[:-10]))  # and a truncated last frame
    reader, _, f, rows = read_all(path)
    assert len(rows) == 112 - 3
    assert reader.rejects.counts == {"bad_frame": 1, "bad_dimensions": 1, "truncated_frame": 1}
    where = {r.reason: r.where for r in reader.rejects.first}
    assert where == {"bad_frame": f"byte {fr[5][0]}", "bad_dimensions": f"byte {fr[7][0]}",
                     "truncated_frame": f"byte {fr[-1][0]}"}


def test_more_rejects_than_kept_are_all_counted(tmp_path):
    """30 frames with a CSI segment version this build cannot decode: every one is counted
    (the log keeps only the first 20 described), none is read."""
    blob = bytearray(shared_path("csi", "csikit-picoscenes",
                                 "picoscenes_iwl5300_example.csi").read_bytes())
    fr = frames_of(bytes(blob))
    for o, s in fr[10:40]:
        lay = segment_layout(bytes(blob[o: o + s]))
        csi_body = next(b for name, _, b, _, _ in lay if name == "CSI")
        blob[o + csi_body - 2: o + csi_body] = (9).to_bytes(2, "little")  # CSI version 9
    path = tmp_path / "csi_v9.csi"
    path.write_bytes(bytes(blob))
    reader, _, _, rows = read_all(path)
    assert len(rows) == 112 - 30
    assert reader.rejects.keep == 20 and len(reader.rejects.first) == 20
    assert reader.rejects.as_dict() == {"csi_version": 30} and reader.rejects.total == 30
    assert reader.info()["reject_reasons"] == {"csi_version": 30}
    assert reader.rejects.first[0].where == f"byte {fr[10][0]}"
    assert str(reader.rejects.first[0]).endswith(
        "csi_version: expected CSI segment version 1-4, got 9")


# -- grouping by segment layout, per-layout chunks, MVM unpacking --------------------------
def _frames_in(path):
    blob = path.read_bytes()
    return [blob[o: o + s] for o, s in frames_of(blob)]


def _rows_by_frame(chunks):
    """(csi, subcarriers, fields) of every row, in stream order."""
    out = []
    for c in chunks:
        for i in range(len(c)):
            out.append((c.data[i], c.subcarriers, {k: v[i] for k, v in c.fields.items()
                                                    if k != "time_valid"}))
    return out


def test_interleaved_devices_decode_like_each_file_alone(tmp_path):
    """Frames of four captures (three devices, several antenna/tone layouts) interleaved in
    runs of 1-30 frames: every row equals the same frame read from its own file, chunks
    never mix layouts and follow file order, and chunk_size cuts only within a layout run."""
    names = list(FILES)
    frames = {k: _frames_in(shared_path("csi", *k.split("/"))) for k in names}
    alone = {k: _rows_by_frame(list(PicoScenesReader(shared_path("csi", *k.split("/")))))
             for k in names}
    rng = np.random.default_rng(4)
    blob, expect, at = bytearray(), [], {k: 0 for k in names}
    while len(blob) < 900_000:  # one block (1 MiB): chunks end only where said below
        k = names[int(rng.integers(len(names)))]
        run = int(rng.choice([1, 1, 2, 5, 30]))
        for _ in range(run):
            i = at[k] % len(frames[k])
            blob += frames[k][i]
            expect.append(alone[k][i])
            at[k] += 1
    path = tmp_path / "mixed.csi"
    path.write_bytes(bytes(blob))
    chunks = list(PicoScenesReader(path, chunk_size=7))
    got = _rows_by_frame(chunks)
    assert len(got) == len(expect)
    for (c, s, f), (c0, s0, f0) in zip(got, expect, strict=True):
        np.testing.assert_array_equal(c, c0)
        np.testing.assert_array_equal(s, s0)
        assert f.keys() == f0.keys()
        for k in f:
            np.testing.assert_array_equal(f[k], f0[k], err_msg=k)
    times = np.concatenate([c.times_s for c in chunks])
    assert len(got) > 500 and all(len(c) <= 7 for c in chunks)
    for a, b in zip(chunks[:-1], chunks[1:], strict=True):  # a full chunk, or a layout change
        assert len(a) == 7 or a.data.shape[1:] != b.data.shape[1:] or \
            not np.array_equal(a.subcarriers, b.subcarriers)
    assert (np.diff(times) >= 0).all()


def test_mvm_unpack_equals_reshape_reference():
    rng = np.random.default_rng(5)
    for (fmt, cbw), (tones, _) in TONE_PLANS.items():
        n_tone = len(tones)
        for n_rx, n_tx in ((1, 1), (2, 1), (2, 2)):
            raw = rng.integers(0, 256, (9, 4 * n_tone * n_rx * n_tx + 3), dtype=np.uint8)
            buf = raw[:, 1: 1 + 4 * n_tone * n_rx * n_tx]  # unaligned, strided rows
            keep = DATA_TONES[(fmt, cbw)]
            iq = np.ascontiguousarray(buf).view("<i2").astype(np.float32)
            ref = iq.view(np.complex64).reshape(9, n_rx, n_tx, n_tone)[..., keep]
            got = mvm_unpack(buf, n_tone, n_rx, n_tx, keep)
            assert got.flags.c_contiguous
            np.testing.assert_array_equal(got, ref.transpose(0, 3, 1, 2))


def test_mvm_unpack_batches_and_flat_buffer():
    """Rows decoded a batch at a time, from row arrays or at offsets of a flat buffer."""
    rng = np.random.default_rng(6)
    (tones, _), keep = TONE_PLANS[(1, 20)], DATA_TONES[(1, 20)]
    n_tone, n_rx, n_tx = len(tones), 2, 1
    width = 4 * n_tone * n_rx * n_tx
    n = 3 * (MVM_BATCH_BYTES // width) + 5  # several batches, the last one partial
    gaps = rng.integers(0, 9, n)  # rows at irregular (and unaligned) offsets
    starts = np.cumsum(gaps + width) - width
    flat = rng.integers(0, 256, int(starts[-1]) + width, dtype=np.uint8)
    rows = np.stack([flat[s: s + width] for s in starts])
    iq = rows.view("<i2").astype(np.float32)
    ref = iq.view(np.complex64).reshape(n, n_rx, n_tx, n_tone)[..., keep].transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(mvm_unpack(rows, n_tone, n_rx, n_tx, keep), ref)
    np.testing.assert_array_equal(mvm_unpack(flat, n_tone, n_rx, n_tx, keep, starts=starts), ref)


@pytest.mark.parametrize("rel", sorted(FILES))
def test_chunks_are_complete_valid_frames(rel):
    """Chunks are built with ``Frames.prevalidated`` (no ``__post_init__``, for speed):
    they must still pass its checks and carry every attribute of a normally built Frames."""
    names = {f.name for f in dataclasses.fields(Frames)}
    for chunk in PicoScenesReader(shared_path("csi", *rel.split("/")), chunk_size=5):
        assert set(vars(chunk)) == names
        Frames(**{k: getattr(chunk, k) for k in names})  # raises if a check fails
        assert chunk.data.flags.c_contiguous and chunk.times_s.flags.c_contiguous


@pytest.mark.parametrize("rel", sorted(FILES))
@pytest.mark.parametrize("kw", [{"chunk_size": 7}, {"chunk_size": 4096, "pad_to": (3, 3)}])
def test_uniform_block_path_equals_general_path(rel, kw, monkeypatch):
    """The one-pass decoding of blocks of one device (``_decode_uniform``) gives exactly
    what decoding by segment layout gives."""
    path = shared_path("csi", *rel.split("/"))
    fast = list(PicoScenesReader(path, **kw))
    monkeypatch.setattr(PicoScenesReader, "_decode_uniform", lambda self, *a: None)
    slow_reader = PicoScenesReader(path, **kw)
    slow = list(slow_reader)
    assert slow_reader.rejects.total == 0
    assert_same_chunks(fast, slow)


def test_chunk_bounds_follow_layout_runs_and_chunk_size():
    """``_chunk_bounds`` (where ``_frames`` cuts a block) against a row-by-row reference:
    a new chunk at every layout change and every ``step`` rows, each chunk's rows the next
    ones of its layout."""
    rng = np.random.default_rng(7)
    for n, step in ((1, 1), (40, 1), (40, 3), (300, 7), (300, 4096)):
        layout = np.repeat(rng.integers(0, 3, n), rng.integers(1, 9, n))[:n]
        expect, done = [], [0, 0, 0]
        for i, k in enumerate(layout.tolist()):
            if expect and expect[-1][2] == k and expect[-1][1] == i \
                    and expect[-1][1] - expect[-1][0] < step:
                lo, _, _, at = expect[-1]
                expect[-1] = (lo, i + 1, k, at)
            else:
                expect.append((i, i + 1, k, done[k]))
            done[k] += 1
        assert _chunk_bounds(layout, n, step) == expect
        assert _chunk_bounds(None, n, step) == [
            (lo, min(lo + step, n), 0, lo) for lo in range(0, n, step)]


def test_chunk_metas_are_independent_and_match_rows():
    """Every chunk gets a meta dict of its own (27 chunks of one layout-alternating file),
    equal to what its rows say."""
    path = shared_path("csi", "csikit-picoscenes", "picoscenes_iwl5300_example.csi")
    chunks = list(PicoScenesReader(path, chunk_size=4096))
    assert len(chunks) == 27
    assert len({id(c.meta) for c in chunks}) == len(chunks)
    for c in chunks:
        f = c.fields
        assert c.meta == {"format": "picoscenes", "chip": "iwl5300",
                          "bandwidth_mhz": int(f["cbw"][-1]),
                          "carrier_freq_hz": int(f["carrier_freq"][-1]),
                          "packet_format": {0: "NonHT", 1: "HT"}[int(f["packet_format"][-1])]}


def test_file_cut_inside_a_length_field(tmp_path):
    """A file ending inside the next frame's 4-byte length field: every whole frame is
    read, the tail is one truncated_frame reject."""
    blob = shared_path("csi", "csikit-picoscenes", "picoscenes_iwl5300_example.csi").read_bytes()
    end = frames_of(blob)[-1][0]
    path = tmp_path / "cut.csi"
    path.write_bytes(blob + blob[end: end + 2])
    reader, _, _, rows = read_all(path)
    assert len(rows) == 112
    assert reader.rejects.counts == {"truncated_frame": 1}
    assert reader.rejects.first[0].where == f"byte {len(blob)}"


def test_carrier_frequency_change_inside_a_uniform_block(tmp_path, monkeypatch):
    """Frames of one segment layout whose carrier frequency changes: chunk metas follow the
    rows (a layout's meta is its last row's when its rows differ), as the general path."""
    blob = bytearray(shared_path("csi", "csikit-picoscenes",
                                 "picoscenes_iwl5300_example.csi").read_bytes())
    fr = frames_of(bytes(blob))
    lay = segment_layout(bytes(blob[fr[0][0]: fr[0][0] + fr[0][1]]))
    csi_body = next(b for name, _, b, _, _ in lay if name == "CSI")
    for o, _ in fr[60:]:
        blob[o + csi_body + 5: o + csi_body + 13] = (5_180_000_000).to_bytes(8, "little")
    path = tmp_path / "retuned.csi"
    path.write_bytes(bytes(blob))
    fast = list(PicoScenesReader(path, chunk_size=7))
    assert {c.meta["carrier_freq_hz"] for c in fast} == {
        int(fast[0].fields["carrier_freq"][0]), 5_180_000_000}
    for c in fast:
        assert c.meta["carrier_freq_hz"] == int(c.fields["carrier_freq"][-1])
    monkeypatch.setattr(PicoScenesReader, "_decode_uniform", lambda self, *a: None)
    assert_same_chunks(fast, list(PicoScenesReader(path, chunk_size=7)))
