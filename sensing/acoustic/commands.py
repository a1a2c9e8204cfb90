"""``ambisense record-audio OUT``: record a sound card (optionally playing a probe) to
exactly what ``ambisense replay`` reads: ``OUT.wav`` + ``OUT.wav.json`` (the probe), or
with ``--sigmf`` ``OUT.sigmf-meta`` + ``OUT.sigmf-data``.

The options are those of the ``sound_card`` source (:class:`SoundCardParams`:
``--device``, ``--samplerate-hz``, ``--channels``, ``--blocksize``, ``--latency``,
``--probe fmcw|cw|none``, ``--f0-hz`` …) plus ``--seconds``, ``--sigmf``, ``--subtype``
(WAV) and ``--datatype`` (SigMF). Without PortAudio or a device it exits with one clear
error message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from agent.commands.base import COMMANDS, Command


def _configure(parser: argparse.ArgumentParser) -> None:
    from agent.commands.simulate import add_model_options
    from sensing.acoustic.formats import WAV_SUBTYPES
    from sensing.acoustic.sources import SoundCardParams

    parser.add_argument("out", help="output path (.wav, or the SigMF base name with --sigmf)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="recording length (unit: s; default: 10)")
    parser.add_argument("--sigmf", action="store_true",
                        help="write SigMF (.sigmf-meta + .sigmf-data) instead of WAV + sidecar")
    parser.add_argument("--subtype", choices=tuple(WAV_SUBTYPES), default="int16",
                        help="WAV sample encoding (default: int16)")
    parser.add_argument("--datatype", default="rf32_le",
                        help="SigMF real datatype (default: rf32_le; ri16_le, ri32_le …)")
    add_model_options(parser, SoundCardParams)


def _device(v: Any) -> Any:
    return int(v) if isinstance(v, str) and v.strip().isdigit() else v


def _run(args: argparse.Namespace) -> int:
    from sensing.acoustic.formats import SigmfWriter, WavWriter
    from sensing.acoustic.probe import probe_from_json
    from sensing.acoustic.sources import SoundCardParams, SoundCardSource

    if not args.seconds > 0:
        raise SystemExit("ambisense record-audio: error: --seconds must be > 0")
    opts = {k: getattr(args, k) for k in SoundCardParams.model_fields if hasattr(args, k)}
    for k in ("device", "output_device"):
        if k in opts:
            opts[k] = _device(opts[k])
    if isinstance(opts.get("latency"), str) and opts["latency"] not in ("low", "high"):
        try:
            opts["latency"] = float(opts["latency"])
        except ValueError:
            pass
    if isinstance(opts.get("tones_hz"), str):
        opts["tones_hz"] = [float(t) for t in opts["tones_hz"].split(",") if t.strip()]
    params = SoundCardParams.from_options(opts, where="record-audio")
    src = SoundCardSource(params, os.path.basename(args.out))
    src.open()  # SourceUnavailableError (an AmbisenseError): the CLI prints it cleanly
    target = int(round(args.seconds * params.samplerate_hz))
    writer: Any = None
    done = 0
    got = [0]  # samples written, read by the stop test
    try:
        for fr in src.chunks(stop=lambda: got[0] >= target):
            if writer is None:
                pj = fr.meta.get("probe")
                probe = probe_from_json(pj) if pj else None
                if args.sigmf:
                    writer = SigmfWriter(args.out, params.samplerate_hz, params.channels,
                                         datatype=args.datatype, probe=probe,
                                         description="ambisense record-audio")
                else:
                    writer = WavWriter(args.out, params.samplerate_hz, params.channels,
                                       subtype=args.subtype, probe=probe)
            block = fr.data[: target - done]
            writer.write(block)
            done += len(block)
            got[0] = done
    finally:
        if writer is not None:
            writer.close()
    out = {"out": args.out, "samples": done, "seconds": done / params.samplerate_hz,
           "format": "sigmf" if args.sigmf else "wav", **src.counters}
    print(json.dumps(out))
    if src.counters["input_overflow"] or src.counters["dropped_blocks"]:
        print("ambisense record-audio: warning: input overflows "
              f"{src.counters['input_overflow']}, dropped blocks "
              f"{src.counters['dropped_blocks']} (raise --blocksize or --latency)",
              file=sys.stderr)
    return 0


COMMANDS.register("record-audio")(
    Command("record a sound card (optionally playing an FMCW/CW probe) to WAV + sidecar or "
            "SigMF", _configure, _run)
)
