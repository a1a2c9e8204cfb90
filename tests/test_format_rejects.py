"""The closed set of reject reasons and the one way a RejectLog counts and merges."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sensing.errors import Reject, RejectLog, RejectReason

ROOT = Path(__file__).resolve().parents[1]


def test_reject_takes_a_member_or_its_value_only():
    r = Reject("x.dat", "byte 3", "bad_bfee", "a bfee", "junk")
    assert r.reason is RejectReason.BAD_BFEE
    assert str(r) == "x.dat: byte 3: bad_bfee: expected a bfee, got junk"
    assert Reject("x", "line 1", RejectReason.NO_ARRAY, "e", "g").reason == "no_array"
    with pytest.raises(ValueError, match="unknown reject reason 'nope'.*bad_bfee"):
        Reject("x", "line 1", "nope", "e", "g")
    with pytest.raises(ValueError):
        RejectLog().add("nope", 3)


def test_add_counts_keeps_the_first_and_counts_the_rest():
    log = RejectLog(keep=2)
    for i in range(3):
        log.add(Reject("x", f"byte {i}", RejectReason.SHORT_CSI, "e", "g"))
    log.add(RejectReason.SHORT_CSI, 5)  # described elsewhere / not at all
    log.add("bad_magic")
    log.add(RejectReason.BAD_MAGIC, 0)
    assert [r.where for r in log.first] == ["byte 0", "byte 1"] and log.room == 0
    assert log.total == 9
    assert log.as_dict() == {"short_csi": 8, "bad_magic": 1}
    assert all(type(k) is str for k in log.as_dict())
    assert json.dumps(log.as_dict()) == '{"short_csi": 8, "bad_magic": 1}'
    with pytest.raises(ValueError):
        log.add(Reject("x", "byte 9", "bad_magic", "e", "g"), 2)


def test_merge_adds_counts_and_fills_the_kept_rejects():
    a, b = RejectLog(keep=3), RejectLog(keep=20)
    a.add(Reject("a", "line 1", "bad_value", "e", "g"))
    for i in range(4):
        b.add(Reject("b", f"line {i}", "short_array", "e", "g"))
    b.add("short_array", 10)
    a.merge(b)
    assert a.as_dict() == {"bad_value": 1, "short_array": 14} and a.total == 15
    assert [r.path for r in a.first] == ["a", "b", "b"]


def test_every_reason_a_reader_names_is_a_member():
    """Reason strings written literally anywhere in the readers and sources are members
    (readers use the members; serial and plug-ins may pass the values)."""
    members = {m.value for m in RejectReason}
    used = set()
    for py in [*(ROOT / "sensing" / "formats").rglob("*.py"), *(ROOT / "sensing" / "sources").rglob("*.py")]:
        text = py.read_text()
        used |= {m.lower() for m in re.findall(r"RejectReason\.([A-Z_]+)", text)}
        # Reject(path, where, "reason", …) with a literal reason
        used |= set(re.findall(r'Reject\(\s*[^,]+,\s*[^,]+,\s*"([a-z_]+)"', text))
    assert used and used <= members, used - members
    assert len(members) == len(RejectReason)  # no aliases
