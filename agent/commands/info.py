"""``ambisense info``: what a capture holds; ``--formats`` / ``--pipelines`` list what is supported."""

from __future__ import annotations

import argparse
import json

from agent.commands.base import COMMANDS, Command
from sensing.formats import FORMATS, open_capture


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("captures", nargs="*", metavar="CAPTURE")
    p.add_argument("--json", action="store_true", help="one JSON object per capture")
    p.add_argument("--formats", action="store_true", help="list the supported capture formats")
    p.add_argument("--pipelines", action="store_true", help="list the detector pipelines")


def _run(args: argparse.Namespace) -> int:
    if args.formats:
        for name, cls in FORMATS.items():
            print(f"{name:<16} {cls.modality:<9} {cls.description}")
    if args.pipelines:
        from agent.pipelines import PIPELINES

        for name, cls in PIPELINES.items():
            flag = "default" if cls.default else "opt-in"
            print(f"{name:<16} {','.join(cls.modalities):<9} {flag:<8} "
                  f"{','.join(cls.event_types):<28} {cls.description}")
    if not args.captures and not (args.formats or args.pipelines):
        print("ambisense info: error: give a CAPTURE, --formats or --pipelines")
        return 2
    for path in args.captures:
        info = open_capture(path).info()
        if info.get("format") == "nexmon_pcap":
            info.update(_links(path))
        if args.json:
            print(json.dumps(info))
            continue
        print(path)
        for key, value in info.items():
            if key != "path":
                print(f"  {key:<16} {value}")
    return 0


def _links(path: str) -> dict:
    """What detectors see of a Nexmon capture: its rows assembled into Wi-Fi frames
    (``sensing.wifi.links``), with the receive cores and spatial streams."""
    from sensing.wifi.links import LinkAssembler

    asm = LinkAssembler()
    frames = 0
    for fr in open_capture(path).chunks():
        out = asm.update(fr)
        frames += len(out) if out is not None else 0
    tail = asm.flush()
    frames += len(tail) if tail is not None else 0
    return {"cores": list(asm.cores), "spatial_streams": list(asm.streams),
            "wifi_frames": frames, "incomplete_frames": asm.incomplete}


COMMANDS.register("info")(
    Command("describe captures: format, frames, duration, rate, layout, rejects", _configure, _run)
)
