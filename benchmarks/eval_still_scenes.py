"""Motion on still scenes: simulated still rooms with every impairment must give no motion.

A still scene is an empty room, or a person breathing without moving, recorded with the
impairments of commodity receivers: AGC gain steps (1–6 dB, several per minute), bursty
packet loss, packet-interval jitter, per-packet CFO and timing offsets (the simulator
applies them to every packet; amplitude-based motion ignores phase), low SNR, and every
file format. Every `motion` event on such a capture is a false alarm. The same grid with
body-motion episodes (`--fidgets`) checks that motion is still reported (episode recall:
an episode counts as found when a `motion` = 1 event starts within its span + 3 s).

Usage::

    python benchmarks/eval_still_scenes.py                 # 96 captures, 5 min each
    python benchmarks/eval_still_scenes.py --quick         # 24 captures, 2 min each
    python benchmarks/eval_still_scenes.py --seed-base 1000  # another held-out set
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def scenes(quick: bool, seed_base: int) -> list[dict]:
    out = []
    fmts = ["esp32", "intel5300"] if quick else ["esp32", "intel5300", "nexmon"]
    grid = itertools.product(
        fmts, [False, True], [1.0, 4.0] if quick else [1.0, 2.5, 4.0],
        [20.0] if quick else [20.0, 30.0], [50.0, 200.0] if quick else [50.0, 100.0, 200.0])
    for i, (fmt, empty, dist, snr, rate) in enumerate(grid):
        if empty and dist != (1.0):
            continue  # distance does not matter in an empty room
        out.append(dict(file_format=fmt, empty=empty, distance_m=dist, snr_db=snr,
                        packet_rate_hz=rate, agc_jumps_per_min=4.0, loss=0.15, jitter=0.4,
                        seed=seed_base + i, n_rx=3 if fmt != "esp32" else 1))
    return out


def run(scene: dict, duration_s: float, fidgets: int, tmp: Path) -> dict:
    from agent.runner import replay_capture
    from sensing.simulate import SIMULATORS

    ext = {"esp32": ".csv", "intel5300": ".dat", "nexmon": ".pcap"}[scene["file_format"]]
    path = tmp / f"s{scene['seed']}_{fidgets}{ext}"
    opts = dict(scene, duration_s=duration_s, fidgets=fidgets)
    if opts["file_format"] == "esp32":
        opts.pop("n_rx")
    truth = SIMULATORS.get("csi-breathing")(str(path), **opts)

    class Keep:
        events: list = []

        def emit(self, ev):
            self.events.append(ev.to_dict())

        def close(self):
            pass

    sink = Keep()
    sink.events = []
    replay_capture(str(path), [sink], pipeline_names=["wifi_motion"], progress=False)
    on = [e["offset_s"] for e in sink.events if e["type"] == "motion" and e["value"] == 1]
    episodes = truth.get("motion_intervals_s", [])
    found = sum(any(a <= t <= b + 3.0 for t in on) for a, b in episodes)
    false_on = [t for t in on if not any(a <= t <= b + 3.0 for a, b in episodes)]
    return {"scene": scene, "fidgets": fidgets, "episodes": len(episodes), "found": found,
            "false_motion": len(false_on), "false_at_s": false_on}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed-base", type=int, default=500)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    dur = 120.0 if args.quick else 300.0
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for sc in scenes(args.quick, args.seed_base):
            rows.append(run(sc, dur, 0, Path(d)))
            if not sc["empty"]:
                rows.append(run(sc, dur, 3, Path(d)))
            r = rows[-1]
            print(f"{sc['file_format']:9} {'empty' if sc['empty'] else 'person'} "
                  f"{sc['distance_m']:.1f} m {sc['snr_db']:.0f} dB {sc['packet_rate_hz']:.0f} Hz "
                  f"seed {sc['seed']}: still false motion {rows[-2 if not sc['empty'] else -1]['false_motion']}"
                  + (f", fidgets {r['found']}/{r['episodes']} found, {r['false_motion']} false"
                     if not sc["empty"] else ""), flush=True)
    still = [r for r in rows if r["fidgets"] == 0]
    moving = [r for r in rows if r["fidgets"] > 0]
    hours = len(still) * dur / 3600
    print(f"\nstill scenes: {len(still)} captures, {hours:.2f} h, "
          f"{sum(r['false_motion'] for r in still)} motion events (every one false)")
    if moving:
        print(f"fidget episodes: {sum(r['found'] for r in moving)}/"
              f"{sum(r['episodes'] for r in moving)} reported, "
              f"{sum(r['false_motion'] for r in moving)} motion events outside them")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
