"""The CSDL the Redfish service publishes: ``$metadata`` and its own OEM schema.

``/redfish/v1/$metadata`` (DSP0266 §8.4) references, for each DMTF schema whose types the
service returns, the schema file on ``redfish.dmtf.org`` and the namespaces used, and declares
the service's entity container. ``/redfish/v1/Schemas/Ironroot_v1.xml`` defines the ``Oem``
objects under ``Oem.Ironroot``: a firmware image's component, role, SVN and SHA-384, the
multipart part names of an update, the account service's per-source failure budget, and the
failing check of a refused update.
"""

from __future__ import annotations

from typing import Final
from xml.sax.saxutils import quoteattr

__all__ = ["OEM_SCHEMA", "OEM_SCHEMA_PATH", "SCHEMA_VERSIONS", "metadata_document"]

OEM_SCHEMA_PATH: Final = "/redfish/v1/Schemas/Ironroot_v1.xml"

SCHEMA_VERSIONS: Final = {
    "ServiceRoot": "v1_20_0",
    "SessionService": "v1_2_0",
    "Session": "v1_8_0",
    "AccountService": "v1_18_1",
    "ManagerAccount": "v1_14_1",
    "Role": "v1_3_3",
    "UpdateService": "v1_17_0",
    "SoftwareInventory": "v1_13_0",
    "TaskService": "v1_3_0",
    "Task": "v1_7_4",
    "Manager": "v1_24_0",
    "LogService": "v1_9_0",
    "LogEntry": "v1_21_0",
    "Message": "v1_3_0",
}
"""The version of each resource type the service returns (``#Type.vX_Y_Z.Type``)."""

_COLLECTIONS: Final = (
    "SessionCollection",
    "ManagerAccountCollection",
    "RoleCollection",
    "SoftwareInventoryCollection",
    "TaskCollection",
    "ManagerCollection",
    "LogServiceCollection",
    "LogEntryCollection",
)
_OTHER: Final = {"Resource": "v1_23_0", "RedfishExtensions": "v1_0_0"}


def _reference(uri: str, namespaces: list[str]) -> str:
    includes = "".join(f"\n    <edmx:Include Namespace={quoteattr(n)}/>" for n in namespaces)
    return f"  <edmx:Reference Uri={quoteattr(uri)}>{includes}\n  </edmx:Reference>\n"


def metadata_document() -> str:
    """The ``$metadata`` document (OData CSDL, XML)."""
    dmtf = "http://redfish.dmtf.org/schemas/v1/"
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n',
    ]
    for name, version in {**SCHEMA_VERSIONS, **_OTHER}.items():
        parts.append(_reference(f"{dmtf}{name}_v1.xml", [name, f"{name}.{version}"]))
    for name in _COLLECTIONS:
        parts.append(_reference(f"{dmtf}{name}_v1.xml", [name]))
    parts.append(_reference(OEM_SCHEMA_PATH, ["Ironroot", "Ironroot.v1_0_0"]))
    parts.append(
        "  <edmx:DataServices>\n"
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
        '      <EntityContainer Name="Service" '
        f'Extends="ServiceRoot.{SCHEMA_VERSIONS["ServiceRoot"]}.ServiceContainer"/>\n'
        "    </Schema>\n"
        "  </edmx:DataServices>\n"
        "</edmx:Edmx>\n"
    )
    return "".join(parts)


def _property(
    name: str,
    kind: str,
    description: str,
    *,
    pattern: str | None = None,
    writable: bool = False,
) -> str:
    permission = "ReadWrite" if writable else "Read"
    extra = (
        f'\n          <Annotation Term="Validation.Pattern" String={quoteattr(pattern)}/>'
        if pattern
        else ""
    )
    return (
        f'        <Property Name="{name}" Type="{kind}" Nullable="false">\n'
        '          <Annotation Term="OData.Permissions" '
        f'EnumMember="OData.Permission/{permission}"/>\n'
        f'          <Annotation Term="OData.Description" String={quoteattr(description)}/>\n'
        f'          <Annotation Term="OData.LongDescription" String={quoteattr(description)}/>'
        f"{extra}\n"
        "        </Property>\n"
    )


def _type(name: str, description: str, properties: list[str]) -> str:
    return (
        f'      <ComplexType Name="{name}" BaseType="Resource.OemObject">\n'
        '        <Annotation Term="OData.AdditionalProperties" Bool="false"/>\n'
        f'        <Annotation Term="OData.Description" String={quoteattr(description)}/>\n'
        f'        <Annotation Term="OData.LongDescription" String={quoteattr(description)}/>\n'
        + "".join(properties)
        + "      </ComplexType>\n"
    )


def _oem_schema() -> str:
    dmtf = "http://redfish.dmtf.org/schemas/v1/"
    odata = "http://docs.oasis-open.org/odata/odata/v4.0/errata03/csd01/complete/vocabularies/"
    software = _type(
        "SoftwareInventory",
        "A firmware image the platform's root of trust holds.",
        [
            _property("Component", "Edm.String", "The component the image is for."),
            _property(
                "Role",
                "Edm.String",
                "Where the image is: active, previous, staged or recovery.",
                pattern="^(active|previous|staged|recovery)$",
            ),
            _property("SVN", "Edm.Int64", "The image's security version number."),
            _property(
                "SHA384",
                "Edm.String",
                "The SHA-384 of the image bytes, hex.",
                pattern="^[0-9a-f]{96}$",
            ),
        ],
    )
    update = _type(
        "UpdateService",
        "The multipart parts, besides UpdateParameters and UpdateFile, that carry an "
        "update's transparent statements and an optional new PFM.",
        [
            _property(
                "StatementPart",
                "Edm.String",
                "The name of the parts holding the transparent statements (repeat the part).",
            ),
            _property("PfmPart", "Edm.String", "The name of the part holding a new signed PFM."),
            _property(
                "PfmStatementPart",
                "Edm.String",
                "The name of the part holding the new PFM's transparent statement.",
            ),
            _property("MaxStatements", "Edm.Int64", "The most statements an update may carry."),
        ],
    )
    accounts = _type(
        "AccountService",
        "The failure budget of one client source address, besides the lockout of an account "
        "from one source: past it, every login from that address is refused with HTTP 429 "
        "and Retry-After before its password is checked.",
        [
            _property(
                "SourceFailureLimit",
                "Edm.Int64",
                "The failed logins (any user names) one source address may make within "
                "SourceFailureWindow seconds; 0 sets no limit.",
                writable=True,
            ),
            _property(
                "SourceFailureWindow",
                "Edm.Int64",
                "The seconds over which a source address's failed logins are counted.",
                writable=True,
            ),
        ],
    )
    failure = _type(
        "Message",
        "Why an update was refused: the failing check, its error code and detail.",
        [
            _property("Check", "Edm.String", "The name of the update check that failed."),
            _property("Code", "Edm.String", "The machine-readable error code."),
            _property("Detail", "Edm.String", "One sentence saying what failed."),
        ],
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
        + _reference(f"{odata}Org.OData.Core.V1.xml", ["Org.OData.Core.V1"]).replace(
            'Namespace="Org.OData.Core.V1"/>', 'Namespace="Org.OData.Core.V1" Alias="OData"/>'
        )
        + _reference(
            "http://redfish.dmtf.org/schemas/v1/RedfishExtensions_v1.xml",
            ["RedfishExtensions.v1_0_0", "Validation.v1_0_0"],
        )
        .replace('"RedfishExtensions.v1_0_0"/>', '"RedfishExtensions.v1_0_0" Alias="Redfish"/>')
        .replace('"Validation.v1_0_0"/>', '"Validation.v1_0_0" Alias="Validation"/>')
        + _reference(f"{dmtf}Resource_v1.xml", ["Resource", "Resource.v1_0_0"])
        + "  <edmx:DataServices>\n"
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Ironroot">\n'
        '      <Annotation Term="Redfish.OwningEntity" String="Ironroot"/>\n'
        "    </Schema>\n"
        '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Ironroot.v1_0_0">\n'
        '      <Annotation Term="Redfish.OwningEntity" String="Ironroot"/>\n'
        '      <Annotation Term="Redfish.Release" String="1.0"/>\n'
        + software
        + update
        + accounts
        + failure
        + "    </Schema>\n"
        "  </edmx:DataServices>\n"
        "</edmx:Edmx>\n"
    )


OEM_SCHEMA: Final = _oem_schema()
"""``Ironroot_v1.xml``: the types of the service's ``Oem.Ironroot`` objects."""
