"""The DMTF message registry messages the Redfish service speaks (DSP0266 §9.6, DSP8011).

A Redfish answer names what happened with a ``MessageId`` of a standard registry —
``Base.1.22.NoValidSession``, ``Update.1.3.VerificationFailed``, ``TaskEvent.1.0.TaskStarted``
— and the message text the registry defines, with its ``%1``, ``%2``, … replaced by the
``MessageArgs``. :data:`MESSAGES` holds the messages this service uses (registry prefix and
version, the template and its severity); ``tests/platform/test_platform_redfish_messages.py``
holds each one to DMTF's published registry (``../shared/vectors/redfish/registries``): the id
exists, the template, argument count and severity are the registry's.

:func:`message` builds one ``Message`` object (``#Message.v1_3_0.Message``); :func:`error_body`
the ``{"error": {"code", "message", "@Message.ExtendedInfo": [...]}}`` body of a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MESSAGES", "REGISTRIES", "MessageDef", "error_body", "message"]

REGISTRIES: Final = {"Base": "1.22", "Update": "1.3", "TaskEvent": "1.0"}
"""The registries used, and the major.minor version their message ids carry."""

MESSAGE_TYPE: Final = "#Message.v1_3_0.Message"


@dataclass(frozen=True, slots=True)
class MessageDef:
    """One registry message: its registry, key, template (``%1``…) and severity."""

    registry: str
    key: str
    template: str
    severity: str

    @property
    def message_id(self) -> str:
        return f"{self.registry}.{REGISTRIES[self.registry]}.{self.key}"

    @property
    def arg_count(self) -> int:
        return sum(f"%{n}" in self.template for n in range(1, 10))

    def render(self, args: Sequence[str]) -> str:
        text = self.template
        for number in range(len(args), 0, -1):  # %10 before %1, should a message have ten
            text = text.replace(f"%{number}", args[number - 1])
        return text


def _defs(registry: str, rows: Mapping[str, tuple[str, str]]) -> dict[str, MessageDef]:
    return {key: MessageDef(registry, key, text, sev) for key, (text, sev) in rows.items()}


_C, _W, _OK = "Critical", "Warning", "OK"

MESSAGES: Final[Mapping[str, MessageDef]] = {
    **_defs(
        "Base",
        {
            "Success": ("The request completed successfully.", _OK),
            "Created": ("The resource was created successfully.", _OK),
            "GeneralError": (
                "A general error has occurred.  See Resolution for information on how to "
                "resolve the error, or @Message.ExtendedInfo if Resolution is not provided.",
                _C,
            ),
            "InternalError": (
                "The request failed due to an internal service error.  The service is still "
                "operational.",
                _C,
            ),
            "NoValidSession": (
                "There is no valid session established with the implementation.",
                _C,
            ),
            "InsufficientPrivilege": (
                "There are insufficient privileges for the account or credentials associated "
                "with the current session to perform the requested operation.",
                _C,
            ),
            "ResourceNotFound": (
                "The requested resource of type %1 named '%2' was not found.",
                _C,
            ),
            "ResourceMissingAtURI": ("The resource at the URI '%1' was not found.", _C),
            "OperationNotAllowed": ("The HTTP method is not allowed on this resource.", _C),
            "MalformedJSON": (
                "The request body submitted was malformed JSON and could not be parsed by the "
                "receiving service.",
                _C,
            ),
            "UnrecognizedRequestBody": (
                "The service detected a malformed request body that it was unable to interpret.",
                _W,
            ),
            "PropertyUnknown": (
                "The property %1 is not in the list of valid properties for the resource.",
                _W,
            ),
            "PropertyMissing": (
                "The property %1 is a required property and must be included in the request.",
                _W,
            ),
            "PropertyNotWritable": (
                "The property %1 is a read-only property and cannot be assigned a value.",
                _W,
            ),
            "PropertyValueTypeError": (
                "The value '%1' for the property %2 is not a type that the property can accept.",
                _W,
            ),
            "PropertyValueFormatError": (
                "The value '%1' for the property %2 is not a format that the property can accept.",
                _W,
            ),
            "PropertyValueNotInList": (
                "The value '%1' for the property %2 is not in the list of acceptable values.",
                _W,
            ),
            "PropertyValueOutOfRange": (
                "The value '%1' for the property %2 is not in the supported range of "
                "acceptable values.",
                _W,
            ),
            "PropertyValueConflict": (
                "The property '%1' could not be written because its value would conflict with "
                "the value of the '%2' property.",
                _W,
            ),
            "ActionParameterMissing": (
                "The action %1 requires the parameter %2 to be present in the request body.",
                _C,
            ),
            "ActionParameterUnknown": (
                "The action %1 was submitted with the invalid parameter %2.",
                _W,
            ),
            "ActionParameterValueTypeError": (
                "The value '%1' for the parameter %2 in the action %3 is not a type that the "
                "parameter can accept.",
                _W,
            ),
            "ActionParameterValueFormatError": (
                "The value '%1' for the parameter %2 in the action %3 is not a format that the "
                "parameter can accept.",
                _W,
            ),
            "ActionParameterValueNotInList": (
                "The value '%1' for the parameter %2 in the action %3 is not in the list of "
                "acceptable values.",
                _W,
            ),
            "ActionParameterValueConflict": (
                "The parameter '%1' with the requested value of '%2' does not meet the "
                "constraints of the implementation.",
                _W,
            ),
            "ActionParameterValueError": (
                "The value for the parameter %1 in the action %2 is invalid.",
                _W,
            ),
            "PropertyValueResourceConflict": (
                "The property '%1' with the requested value of '%2' could not be written "
                "because the value conflicts with the state or configuration of the resource "
                "at '%3'.",
                _W,
            ),
            "ActionParameterNotSupported": (
                "The parameter %1 for the action %2 is not supported on the target resource.",
                _W,
            ),
            "ArraySizeTooLong": (
                "The array provided for property %1 exceeds the size limit %2.",
                _W,
            ),
            "StringValueTooLong": ("The string '%1' exceeds the length limit %2.", _W),
            "ResourceAlreadyExists": (
                "The requested resource of type %1 with the property %2 with the value '%3' "
                "already exists.",
                _C,
            ),
            "ResourceCannotBeDeleted": (
                "The delete request failed because the resource requested cannot be deleted.",
                _C,
            ),
            "ResourceInUse": (
                "The change to the requested resource failed because the resource is in use "
                "or in transition.",
                _W,
            ),
            "PayloadTooLarge": (
                "The supplied payload exceeds the maximum size supported by the service.",
                _C,
            ),
            "MissingOrMalformedPart": (
                "The multipart request contains malformed parts or is missing required parts.",
                _C,
            ),
            "PreconditionFailed": (
                "The ETag supplied did not match the ETag required to change this resource.",
                _C,
            ),
            "HeaderInvalid": ("Header '%1' is invalid.", _C),
            "QueryParameterUnsupported": ("Query parameter '%1' is not supported.", _W),
            "QueryParameterValueFormatError": (
                "The value '%1' for the parameter %2 is not a format that the parameter can "
                "accept.",
                _W,
            ),
            "QueryNotSupportedOnResource": (
                "Querying is not supported on the requested resource.",
                _W,
            ),
            "SessionLimitExceeded": (
                "The session establishment failed due to the number of simultaneous sessions "
                "exceeding the limit of the implementation.",
                _C,
            ),
            "CreateLimitReachedForResource": (
                "The create operation failed because the resource has reached the limit of "
                "possible resources.",
                _C,
            ),
            "ServiceTemporarilyUnavailable": (
                "The service is temporarily unavailable.  Retry in %1 seconds.",
                _C,
            ),
            "PasswordIncorrectLength": (
                "The password provided for this account does not meet the password length "
                "requirements of the service.",
                _C,
            ),
            "AccountModified": ("The account was successfully modified.", _OK),
            "AccountRemoved": ("The account was successfully removed.", _OK),
            "SessionTerminated": ("The session was successfully terminated.", _OK),
            "CouldNotEstablishConnection": (
                "The service failed to establish a connection with the URI '%1'.",
                _C,
            ),
            "ResourceAtUriUnauthorized": (
                "While accessing the resource at '%1', the service received an authorization "
                "error '%2'.",
                _C,
            ),
            "ResourceAtUriInUnknownFormat": (
                "The resource at '%1' is in a format not recognized by the service.",
                _C,
            ),
        },
    ),
    **_defs(
        "Update",
        {
            "TargetDetermined": (
                "The target device '%1' will be updated with image '%2'.",
                _OK,
            ),
            "UpdateInProgress": ("An update is in progress.", _OK),
            "TransferringToComponent": ("Image '%1' is being transferred to '%2'.", _OK),
            "VerifyingAtComponent": ("Image '%1' is being verified at '%2'.", _OK),
            "InstallingOnComponent": ("Image '%1' is being installed on '%2'.", _OK),
            "ApplyingOnComponent": ("Image '%1' is being applied on '%2'.", _OK),
            "TransferFailed": ("Transfer of image '%1' to '%2' failed.", _C),
            "VerificationFailed": ("Verification of image '%1' at '%2' failed.", _C),
            "ApplyFailed": ("Installation of image '%1' to '%2' failed.", _C),
            "ActivateFailed": ("Activation of image '%1' on '%2' failed.", _C),
            "UpdateSuccessful": ("Device '%1' successfully updated with image '%2'.", _OK),
        },
    ),
    **_defs(
        "TaskEvent",
        {
            "TaskStarted": ("The task with Id '%1' has started.", _OK),
            "TaskCompletedOK": ("The task with Id '%1' has completed.", _OK),
            "TaskAborted": ("The task with Id '%1' has completed with errors.", _C),
            "TaskProgressChanged": (
                "The task with Id '%1' has changed to progress %2 percent complete.",
                _OK,
            ),
        },
    ),
}


def message(
    key: str,
    *args: object,
    related: Sequence[str] = (),
    oem: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``Message`` object for registry message ``key`` with ``args`` (made text, as
    ``MessageArgs`` are), ``related`` JSON pointers (``RelatedProperties``) and an ``Oem``
    member under ``Ironroot``."""
    definition = MESSAGES[key]
    texts = [str(a) for a in args]
    if len(texts) != definition.arg_count:
        raise ValueError(f"{key} takes {definition.arg_count} arguments, not {len(texts)}")
    out: dict[str, Any] = {
        "@odata.type": MESSAGE_TYPE,
        "MessageId": definition.message_id,
        "Message": definition.render(texts),
        "MessageArgs": texts,
        "MessageSeverity": definition.severity,
    }
    if related:
        out["RelatedProperties"] = list(related)
    if oem:
        out["Oem"] = {"Ironroot": {"@odata.type": "#Ironroot.v1_0_0.Message", **oem}}
    return out


def error_body(messages: Sequence[Mapping[str, Any]], text: str | None = None) -> dict[str, Any]:
    """A Redfish error body: the first message's id is the ``code`` (``Base.GeneralError``
    when there are several), ``text`` or the message's own text the ``message``, and every
    message in ``@Message.ExtendedInfo``."""
    if len(messages) == 1:
        code = str(messages[0]["MessageId"])
        summary = text or str(messages[0]["Message"])
    else:
        general = MESSAGES["GeneralError"]
        code = general.message_id
        summary = text or general.template
    return {"error": {"code": code, "message": summary, "@Message.ExtendedInfo": list(messages)}}
