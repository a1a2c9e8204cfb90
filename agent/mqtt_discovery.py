"""Home Assistant MQTT discovery configs for ambisense event topics.

One retained config per (device, event type) under
``<discovery_prefix>/<component>/<unique_id>/config`` with ``unique_id =
ambisense_<device>_<type>``. Readings become ``sensor`` entities; occurrences (fall,
seizure …) and states (presence, motion) become ``binary_sensor`` entities with a
``device_class``. A pipeline declares the entities of its own event types in
:attr:`agent.pipelines.Pipeline.home_assistant` (so a new modality's folder needs no change
here); event types that no one describes get no entity (their topics are still published).
"""

from __future__ import annotations

from typing import Any

from agent import __version__

#: type → (component, extra config) for readings shown as HA sensors.
SENSORS: dict[str, dict[str, Any]] = {
    "breathing_rate": {"unit_of_measurement": "bpm", "icon": "mdi:lungs",
                       "state_class": "measurement", "suggested_display_precision": 1},
    "heart_rate": {"unit_of_measurement": "bpm", "icon": "mdi:heart-pulse",
                   "state_class": "measurement"},
    "soil_moisture": {"device_class": "moisture", "unit_of_measurement": "%",
                      "state_class": "measurement"},
}

_ON_ANY = "ON"
_ON_TRUTHY = "{{ 'OFF' if value_json.value in [false, 0, 'off', 'OFF', 'absent'] else 'ON' }}"

#: type → extra config for binary sensors. Occurrence events turn the entity on for
#: ``off_delay`` seconds; presence/motion follow the event value.
BINARY_SENSORS: dict[str, dict[str, Any]] = {
    "fall": {"device_class": "safety", "icon": "mdi:human-handsdown",
             "value_template": _ON_ANY, "off_delay": 300},
    "seizure": {"device_class": "safety", "icon": "mdi:brain",
                "value_template": _ON_ANY, "off_delay": 300},
    "seizure_alert": {"device_class": "safety", "icon": "mdi:alert",
                      "value_template": _ON_ANY, "off_delay": 300},
    "presence": {"device_class": "presence", "value_template": _ON_TRUTHY, "off_delay": 600},
    "motion": {"device_class": "motion", "value_template": _ON_TRUTHY, "off_delay": 60},
}


def pipeline_entities() -> dict[str, tuple[str, dict[str, Any]]]:
    """Event type → (``"sensor"`` or ``"binary_sensor"``, extra config), as the registered
    pipelines declare them in ``home_assistant`` (the ``component`` key chooses; a binary
    sensor's default ``value_template`` follows the event value)."""
    from agent.pipelines import PIPELINES

    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for _name, cls in PIPELINES.items():
        for typ, hint in getattr(cls, "home_assistant", {}).items():
            hint = dict(hint)
            component = hint.pop("component", "sensor")
            if component == "binary_sensor":
                hint.setdefault("value_template", _ON_TRUTHY)
            out.setdefault(typ, (component, hint))
    return out


def discovery_configs(
    prefix: str, device: str, event_type: str, discovery_prefix: str = "homeassistant"
) -> list[tuple[str, dict[str, Any]]]:
    """``[(config_topic, config)]`` for one device's event type; empty when HA has no entity.

    Parameters
    ----------
    prefix : str
        ambisense topic prefix.
    device : str
        Topic slug of the device.
    event_type : str
        Event type (last topic level).
    discovery_prefix : str
        Home Assistant discovery prefix.
    """
    declared = pipeline_entities().get(event_type)
    if event_type in SENSORS or (declared and declared[0] == "sensor"):
        component = "sensor"
        extra = {"value_template": "{{ value_json.value }}",
                 **(SENSORS.get(event_type) or declared[1])}  # type: ignore[index]
    elif event_type in BINARY_SENSORS or (declared and declared[0] == "binary_sensor"):
        component = "binary_sensor"
        extra = {"payload_on": "ON", "payload_off": "OFF",
                 **(BINARY_SENSORS.get(event_type) or declared[1])}  # type: ignore[index]
    else:
        return []
    unique_id = f"ambisense_{device}_{event_type}"
    state_topic = f"{prefix}/{device}/{event_type}"
    config: dict[str, Any] = {
        "name": event_type.replace("_", " ").capitalize(),
        "unique_id": unique_id,
        "object_id": unique_id,
        "state_topic": state_topic,
        "json_attributes_topic": state_topic,
        "availability_topic": f"{prefix}/{device}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
        "device": {
            "identifiers": [f"ambisense_{device}"],
            "name": f"ambisense {device}",
            "manufacturer": "ambisense",
            "model": "ambisense edge agent",
            "sw_version": __version__,
        },
        "origin": {"name": "ambisense", "sw_version": __version__},
        **extra,
    }
    return [(f"{discovery_prefix}/{component}/{unique_id}/config", config)]
