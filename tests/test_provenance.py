"""Provenance records name the commit, date and device."""

import re
from pathlib import Path

import torch

from irnlib.runtime.provenance import command_line, cpu_model, device_name, git_commit, provenance, provenance_markdown


def test_record_holds_environment_and_extra_fields():
    record = provenance(data="Set5 (5 images)", iterations=100)
    assert record["data"] == "Set5 (5 images)" and record["iterations"] == 100
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?|unknown", record["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", record["date"])
    assert record["device"].startswith("CPU (")
    md = provenance_markdown(record)
    assert "- iterations: 100" in md and md.startswith("**Provenance**")


def test_the_device_names_the_cpu_model_and_its_vector_capabilities():
    name = device_name("cpu")
    assert name.startswith("CPU (") and name.endswith(f"; {torch.get_num_threads()} threads)")
    if Path("/proc/cpuinfo").is_file():
        first_model = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
        assert first_model.partition(":")[2].strip() in name


def test_command_line_names_the_module_its_arguments_and_where_it_ran():
    text = command_line("irnlib.experiments.floor_hold", ["a.pth", "--draws", "2"])
    assert text.startswith("Command: `python -m irnlib.experiments.floor_hold a.pth --draws 2`; commit ")
    assert f"commit {git_commit()};" in text and f"CPU {cpu_model()};" in text
    assert text.endswith(f"; {torch.get_num_threads()} torch threads.")
