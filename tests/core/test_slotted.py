"""The generated copier of the value classes agrees with dataclasses; the slot setters
it and the codec's reader build on refuse classes they would build wrongly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from kalad.core.job import Job, Metadata, RemoteProperties
from kalad.core.slotted import copier, slot_setters

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
JOB = Job(id="j", name="n", created_at=NOW, command="true", env=(("A", "1"),),
          remote_properties=RemoteProperties(url="http://x/"),
          metadata=Metadata(success_count=3, last_success=NOW))


def test_replace_equals_dataclasses_replace_for_every_field() -> None:
    changes = {"name": "m", "disabled": True, "next_run_at": NOW, "metadata": Metadata(),
               "env": (), "parent_jobs": ("p",), "retries": 2}
    for name, value in changes.items():
        copied = JOB.replace(**{name: value})
        assert copied == dataclasses.replace(JOB, **{name: value})
        assert getattr(copied, name) == value
    assert JOB.replace() == JOB and JOB.replace() is not JOB
    assert JOB.name == "n"  # the original is untouched


def test_metadata_replace_keeps_the_other_counters() -> None:
    later = JOB.metadata.replace(error_count=1)
    assert (later.success_count, later.last_success, later.error_count) == (3, NOW, 1)


def test_replace_refuses_unknown_fields_and_positional_changes() -> None:
    with pytest.raises(TypeError):
        JOB.replace(nonsense=1)
    with pytest.raises(TypeError):
        JOB.replace("m")  # type: ignore[misc]


def test_the_copy_is_still_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        JOB.replace(name="m").name = "x"  # type: ignore[misc]


def test_both_refuse_classes_they_would_build_wrongly() -> None:
    """They skip __init__: a __post_init__ or a default_factory would silently not run."""
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class Factory:
        x: tuple = field(default_factory=tuple)

    @dataclass(frozen=True)
    class Unslotted:
        x: int

    for cls in (Checked, Factory, Unslotted):
        with pytest.raises(TypeError):
            slot_setters(cls)
        with pytest.raises(TypeError):
            copier(cls)
