"""Provenance records name the commit, date and device."""

import re

from irnlib.provenance import provenance, provenance_markdown


def test_record_holds_environment_and_extra_fields():
    record = provenance(data="Set5 (5 images)", iterations=100)
    assert record["data"] == "Set5 (5 images)" and record["iterations"] == 100
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?|unknown", record["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", record["date"])
    assert record["device"].startswith("CPU (")
    md = provenance_markdown(record)
    assert "- iterations: 100" in md and md.startswith("**Provenance**")
