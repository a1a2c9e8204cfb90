"""``ambisense agent``: the edge agent — every configured source, concurrently, until stopped.

``ambisense agent --config agent.toml`` runs a config (``docs/agent.md``);
``--check-config`` only validates it; ``--demo`` runs an embedded default config that
replays every capture of ``agent/samples/`` once, as fast as possible, printing events
and writing them to ``ambisense-events.jsonl``.

Exit codes: 0 done or stopped by SIGTERM/SIGINT (sinks flushed); 1 a stream gave up
(``max_restarts``), did not stop in time, or a sink could not deliver or persist its
events when closed; 2 unusable platform or unreadable file;
78 (``EX_CONFIG``) invalid config.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import struct
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.commands.base import COMMANDS, Command

if TYPE_CHECKING:
    from agent.config import LoadedConfig
    from agent.sinks import Sink
from sensing.errors import AmbisenseError

log = logging.getLogger("ambisense.agent")
status_log = logging.getLogger("ambisense.agent.status")

#: Exit code of an invalid config (sysexits.h EX_CONFIG); systemd does not restart on it.
EX_CONFIG = 78
#: Default JSON Lines file of ``--demo`` (in the current directory).
DEMO_EVENTS = "ambisense-events.jsonl"


class PlatformError(AmbisenseError):
    """The agent cannot run on this machine (e.g. 32-bit ARM)."""


def check_platform(machine: str | None = None, pointer_bits: int | None = None) -> None:
    """Refuse 32-bit ARM with a precise message (onnxruntime has no wheels for it).

    Parameters
    ----------
    machine : str, optional
        ``platform.machine()`` (for tests).
    pointer_bits : int, optional
        Width of a pointer of this Python (32 on a 32-bit userland on a 64-bit kernel).
    """
    machine = (machine if machine is not None else platform.machine()).lower()
    bits = pointer_bits if pointer_bits is not None else struct.calcsize("P") * 8
    arm32 = machine.startswith(("armv6", "armv7", "armv8l", "arm")) and machine != "arm64"
    if arm32 or (machine in ("aarch64", "arm64") and bits == 32):
        raise PlatformError(
            f"this is 32-bit ARM ({machine}, {bits}-bit Python): the agent needs 64-bit ARM "
            f"(aarch64). onnxruntime publishes wheels for aarch64 only (Python 3.11+), none "
            f"for armv6l/armv7l. Install Raspberry Pi OS (64-bit) — Bookworm or later — on a "
            f"Raspberry Pi 3, 4, 5 or Zero 2 W; see docs/raspberry-pi.md"
        )


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="agent config (TOML), see docs/agent.md")
    p.add_argument("--check-config", action="store_true",
                   help="validate the config (and the demo config with --demo), then exit: "
                        "0 valid, 78 invalid, 2 unreadable")
    p.add_argument("--demo", action="store_true",
                   help="embedded default config: replay every capture in agent/samples/ once, "
                        f"as fast as possible; events to the console and ./{DEMO_EVENTS}")
    p.add_argument("--samples", metavar="DIR",
                   help="with --demo: directory of captures (default: the bundled samples)")
    p.add_argument("--events-file", metavar="FILE", default=DEMO_EVENTS,
                   help=f"with --demo: JSON Lines file to (re)write (default: {DEMO_EVENTS})")
    p.add_argument("--jsonl", action="store_true",
                   help="with --demo: print one JSON event per line instead of a table")
    p.add_argument("--mqtt", metavar="URL",
                   help="with --demo: also publish to a broker, mqtt[s]://[user@]host[:port]"
                        "[/prefix] (password from AMBISENSE_MQTT_PASSWORD)")
    p.add_argument("--status-interval", type=float, metavar="SECONDS",
                   help="log a status line every SECONDS (overrides agent.status_interval_s; "
                        "0 = off)")


def bundled_samples() -> Path:
    """Directory of the bundled captures (the package's ``samples``, else ./agent/samples)."""
    here = Path(__file__).resolve().parents[1] / "samples"
    if here.is_dir():
        return here
    return Path.cwd() / "agent" / "samples"


def demo_config(samples: str | os.PathLike, events_file: str, console: str = "table",
                ) -> LoadedConfig:
    """The embedded default config: one replay stream per capture in ``samples``."""
    from agent.config import ConfigError, expand_replay, validate

    samples = os.path.abspath(os.fspath(samples))
    if not os.path.isdir(samples) or not expand_replay(samples):
        raise ConfigError("<demo>", [f"samples: expected a directory holding captures, got "
                                     f"{json.dumps(samples)} (nothing there); run it in the "
                                     f"source checkout or give --samples DIR"])
    data: dict[str, Any] = {
        "agent": {"name": "ambisense-demo", "status_interval_s": 0},
        "sources": [{"type": "replay", "path": samples, "loop": False, "realtime": False,
                     # a capture that breaks mid-way is retried twice, then the demo ends (1)
                     "restart": {"initial_s": 0.5, "max_restarts": 2}}],
        "sinks": {"console": console, "jsonl_file": os.path.abspath(events_file)},
    }
    return validate(data, "<demo>", base_dir=os.getcwd())


def _summary(loaded: LoadedConfig) -> str:
    from agent.config import plugin_sinks
    from agent.supervisor import build_streams

    cfg = loaded.config
    lines = [f"{loaded.origin}: OK — agent {cfg.agent.name!r}, "
             f"{len(cfg.sources)} source(s)"]
    for spec in build_streams(cfg):
        pipes = ", ".join(c.name for c, _ in spec.pipelines) or "no pipeline"
        lines.append(f"  stream {spec.name} ({spec.kind}) → {pipes}")
    sinks = []
    if cfg.sinks.console != "off":
        sinks.append(f"console ({cfg.sinks.console})")
    if cfg.sinks.jsonl_file:
        sinks.append(f"JSON Lines file {cfg.sinks.jsonl_file}")
    sinks += [f"{cls.config_key} ({cls.description or cls.__name__})"
              for cls, _ in plugin_sinks(cfg.sinks)]
    if loaded.mqtt is not None:
        where = "; ".join(f"{k} from {v}" for k, v in (loaded.secrets_from or {}).items())
        sinks.append(f"MQTT {loaded.mqtt.broker()}" + (f" ({where})" if where else ""))
        if loaded.mqtt.tls is not None and loaded.mqtt.tls.insecure:
            sinks.append("WARNING: TLS host name check OFF (mqtt.tls.insecure = true; "
                         "testing only)")
    lines.append("  sinks: " + (", ".join(sinks) or "none"))
    return "\n".join(lines)


def build_sinks(loaded: LoadedConfig, *, truncate_jsonl: bool = False) -> list[Sink]:
    """Console, JSON Lines file, plug-in and MQTT sinks as configured (the demo writes a
    fresh JSON Lines file each run: ``truncate_jsonl``)."""
    from agent.config import plugin_sinks
    from agent.sinks import open_sinks

    cfg = loaded.config
    sinks = open_sinks(console=cfg.sinks.console, jsonl_file=cfg.sinks.jsonl_file,
                       plugins=plugin_sinks(cfg.sinks), device=cfg.agent.name,
                       truncate_jsonl=truncate_jsonl)
    if loaded.mqtt is not None:
        from agent.sinks.mqtt import MqttSink

        sinks.append(MqttSink(loaded.mqtt, device=cfg.agent.name))
    return sinks


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM/SIGINT set ``stop`` (a second SIGINT aborts); returns the previous handlers."""

    def handler(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("received %s: stopping (flushing pipelines and sinks)",
                    signal.Signals(signum).name)
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    return previous


def run_agent(loaded: LoadedConfig, *, status_interval_s: float | None = None,
              truncate_jsonl: bool = False, stop: threading.Event | None = None) -> int:
    """Run a validated config until every stream ended or ``stop`` is set; return the
    exit code (0 clean, 1 a stream failed or did not stop)."""
    from agent.supervisor import Supervisor, build_streams, format_status

    cfg = loaded.config
    specs = build_streams(cfg)
    sinks = build_sinks(loaded, truncate_jsonl=truncate_jsonl)
    sup = Supervisor(specs, sinks, device=cfg.agent.name, stop=stop)
    for sink in sinks:
        if hasattr(sink, "add_status_provider"):
            sink.add_status_provider(lambda: _mqtt_status(sup))
            types = sorted({t for s in specs for c, _ in s.pipelines for t in c.event_types})
            if types:
                sink.announce(types)
    interval = cfg.agent.status_interval_s if status_interval_s is None else status_interval_s
    if interval > 0 and status_log.getEffectiveLevel() > logging.INFO:
        status_log.setLevel(logging.INFO)
    log.info("starting %d stream(s): %s", len(specs), ", ".join(s.name for s in specs))
    sup.start()
    try:
        sup.wait(status_interval_s=interval,
                 on_status=lambda st: status_log.info("%s", format_status(st)))
    finally:
        clean = sup.shutdown()
    final = sup.status()
    for name, s in final["streams"].items():
        pipes = ", ".join(f"{n}: {p['events']} events" for n, p in s["pipelines"].items())
        print(f"{name}: {s['state']}, {s['frames']} frames, {s['rejects']} rejects, "
              f"{s['drops']} drops, {s['restarts']} restarts ({pipes or 'no pipelines'})",
              file=sys.stderr)
    print(f"{final['events']} events in {final['uptime_s']:.1f} s", file=sys.stderr)
    if sup.failed:
        log.error("stream(s) gave up: %s", ", ".join(sup.failed))
        return 1
    if sup.fanout.close_errors:
        return 1  # a sink could not deliver or persist everything (logged above)
    return 0 if clean else 1


def _mqtt_status(sup: Any) -> dict[str, Any]:
    st = sup.status(consumer="mqtt")
    return {k: st[k] for k in ("cpu_percent", "rss_mb", "threads", "streams", "sink_errors")}


def _run(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, LoadedConfig, load_config

    check_platform()
    if args.demo and args.config:
        raise SystemExit("ambisense agent: error: give either --config FILE or --demo, not both")
    try:
        if args.demo:
            loaded = demo_config(args.samples or bundled_samples(), args.events_file,
                                 "jsonl" if args.jsonl else "table")
            if args.mqtt:
                from agent.sinks.mqtt import MqttSettings

                loaded = LoadedConfig(loaded.config, loaded.origin,
                                      MqttSettings.from_url(args.mqtt), {})
        elif args.config:
            loaded = load_config(args.config)
        else:
            raise SystemExit("ambisense agent: error: give --config FILE (see docs/agent.md), "
                             "or --demo to replay the bundled captures")
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"ambisense agent: error: {line}", file=sys.stderr)
        return EX_CONFIG
    if args.check_config:
        print(_summary(loaded))
        return 0
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    stop = threading.Event()
    previous = _install_signals(stop)
    try:
        return run_agent(loaded, status_interval_s=args.status_interval,
                         truncate_jsonl=args.demo, stop=stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


COMMANDS.register("agent")(
    Command("run the edge agent: sources → pipelines → console/JSONL/MQTT, restarting what "
            "fails (--config FILE, --check-config, --demo)", _configure, _run)
)
