"""Every message the Redfish service speaks is the one DMTF's registry defines: the id exists in
the published registry (``redfish/registries`` of the vectors, read in place), with the same
template, number of arguments and severity. And every resource type the service names is a
schema DMTF publishes (``redfish/csdl``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ironroot.platform._redfish_csdl import SCHEMA_VERSIONS
from ironroot.platform._redfish_messages import MESSAGES, REGISTRIES, error_body, message

pytestmark = pytest.mark.vectors


def _registry(vectors: Path, prefix: str) -> dict[str, object]:
    found = sorted((vectors / "redfish" / "registries").glob(f"{prefix}.*.json"))
    assert found, f"no {prefix} registry in the vectors"
    doc = json.loads(found[-1].read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_each_message_is_the_registrys(vectors: Path, key: str) -> None:
    ours = MESSAGES[key]
    registry = _registry(vectors, ours.registry)
    major, minor, _ = str(registry["RegistryVersion"]).split(".")
    assert REGISTRIES[ours.registry] == f"{major}.{minor}"
    messages = registry["Messages"]
    assert isinstance(messages, dict)
    theirs = messages[key]
    assert ours.template == theirs["Message"]
    assert ours.arg_count == theirs.get("NumberOfArgs", 0)
    assert ours.severity == theirs["MessageSeverity"]
    assert ours.message_id == f"{ours.registry}.{major}.{minor}.{key}"


def test_a_message_object_fills_in_its_arguments() -> None:
    got = message("ResourceNotFound", "Task", "7", related=["/Id"])
    assert got == {
        "@odata.type": "#Message.v1_3_0.Message",
        "MessageId": "Base.1.22.ResourceNotFound",
        "Message": "The requested resource of type Task named '7' was not found.",
        "MessageArgs": ["Task", "7"],
        "MessageSeverity": "Critical",
        "RelatedProperties": ["/Id"],
    }
    with pytest.raises(ValueError, match="takes 2 arguments"):
        message("ResourceNotFound", "Task")


def test_an_error_body_with_several_messages_is_a_general_error() -> None:
    one = error_body([message("NoValidSession")])
    assert one["error"]["code"] == "Base.1.22.NoValidSession"
    two = error_body([message("ResourceInUse"), message("UpdateInProgress")], "busy")
    assert two["error"]["code"] == "Base.1.22.GeneralError"
    assert two["error"]["message"] == "busy"
    assert len(two["error"]["@Message.ExtendedInfo"]) == 2


@pytest.mark.parametrize("kind", sorted(SCHEMA_VERSIONS))
def test_each_resource_version_is_a_published_schema(vectors: Path, kind: str) -> None:
    csdl = (vectors / "redfish" / "csdl" / f"{kind}_v1.xml").read_text()
    namespaces = set(re.findall(rf'Namespace="{kind}\.(v1_\d+_\d+)"', csdl))
    assert SCHEMA_VERSIONS[kind] in namespaces
