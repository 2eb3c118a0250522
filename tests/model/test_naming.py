"""Python names for QAPI names, and the names of generated classes."""

from __future__ import annotations

import pytest

from qjobd.model import Model
from qjobd.model.naming import camel_case, class_name, enum_member_name, member_name


@pytest.mark.parametrize(
    ("qapi", "python"),
    [
        ("id", "id"),
        ("job-id", "job_id"),
        ("avg_rd_queue_depth", "avg_rd_queue_depth"),
        ("if", "if_"),
        ("from", "from_"),
        ("match", "match"),
        ("__com.redhat_drive", "q__com_redhat_drive"),
        ("x-perf", "x_perf"),
        ("CamelName", "CamelName"),
    ],
)
def test_member_name(qapi: str, python: str) -> None:
    assert member_name(qapi) == python


@pytest.mark.parametrize(
    ("qapi", "python"),
    [("running", "running"), ("set-speed", "set_speed"), ("2_5", "q2_5"), ("mro", "mro_"),
     ("None", "None_"), ("name", "name")],
)  # fmt: skip
def test_enum_member_name(qapi: str, python: str) -> None:
    assert enum_member_name(qapi) == python


@pytest.mark.parametrize(
    ("qapi", "python"),
    [
        ("BlockdevOptions", "BlockdevOptions"),
        ("q_obj_job-pause-arg", "JobPauseArgs"),
        ("q_obj_qmp_capabilities-arg", "QmpCapabilitiesArgs"),
        ("q_obj_BlockdevOptions-base", "BlockdevOptionsBase"),
        ("q_empty", "Empty"),
    ],
)
def test_class_name(qapi: str, python: str) -> None:
    assert class_name(qapi) == python


def test_camel_case() -> None:
    assert camel_case("JOB_STATUS_CHANGE") == "JobStatusChange"
    assert camel_case("x-blockdev-reopen") == "XBlockdevReopen"
    assert camel_case("query-qmp-schema") == "QueryQmpSchema"


def test_generated_names(test_model: Model) -> None:
    py = test_model.py
    assert py.AdoptArgs.__qapi_name__ == "q_obj_adopt-arg"
    assert py.PetAdoptedData.__qapi_name__ == "q_obj_PET_ADOPTED-arg"
    assert test_model.types["q_obj_Pet-base"].__name__ == "PetBase"
    # an explicit type keeps the Python name when an implicit one would clash
    assert py.PetBase.__qapi_name__ == "PetBase"
    assert test_model.commands["adopt"].arg_type is py.AdoptArgs


def test_bundled_schema_builds(bundled_model: Model) -> None:
    assert bundled_model.commands["job-pause"].arg_type is bundled_model.py.JobPauseArgs
    assert bundled_model.structure_args("job-pause", {"id": "j"}) == bundled_model.py.JobPauseArgs(
        id="j"
    )
    assert bundled_model.unstructure_return("job-pause", None) == {}
