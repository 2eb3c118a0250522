"""QMP exchanges recorded from qemu-storage-daemon 7.2, byte for byte.

Each step is (bytes the client sends, lines the daemon answers).  Recorded with a raw
socket client against Debian's qemu-storage-daemon 7.2 (see the project's shared
reference transcripts); the daemon ends every line with CR LF.
"""

# ruff: noqa: E501  (recorded lines are kept whole)
from __future__ import annotations

NOT_NEGOTIATED = [
    (b'{"execute": "query-version"}\n',
     ['{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}']),
    (b'{"execute": "nosuch", "id": 3}\n',
     ['{"id": 3, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with \'qmp_capabilities\'"}}']),
    (b'{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}}\n',
     ['{"error": {"class": "GenericError", "desc": "Parameter \'null\' does not accept value \'foo\'"}}']),
    (b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}\n',
     ['{"return": {}}']),
    (b'{"execute": "qmp_capabilities"}\n',
     ['{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is already complete, command ignored"}}']),
]

MALFORMED = [
    (b"garbage\n", ['{"error": {"class": "GenericError", "desc": "JSON parse error, invalid keyword \'garbage\'"}}']),
    (b"[]\n", ['{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}']),
    (b'{"arguments": {}}\n', ['{"error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}']),
    (b'{"execute": 1}\n', ['{"error": {"class": "GenericError", "desc": "QMP input member \'execute\' must be a string"}}']),
    (b'{"execute": "query-jobs", "arguments": []}\n',
     ['{"error": {"class": "GenericError", "desc": "QMP input member \'arguments\' must be an object"}}']),
    (b'{"execute": "query-jobs", "foo": 1}\n',
     ['{"error": {"class": "GenericError", "desc": "QMP input member \'foo\' is unexpected"}}']),
    (b'{"execute": "nosuch"}\n',
     ['{"error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}']),
    (b'{"execute": "query-jobs", "id": {"a": [1, "x"]}}\n', ['{"return": [], "id": {"a": [1, "x"]}}']),
    (b'{"execute": "query-jobs", "id": 7}\n', ['{"return": [], "id": 7}']),
    (b'{"execute": "nosuch", "id": "abc"}\n',
     ['{"id": "abc", "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}']),
    (b'{"exec-oob": "query-jobs", "id": 1}\n',
     ['{"id": 1, "error": {"class": "GenericError", "desc": "The command query-jobs does not support OOB"}}']),
    (b'{"exec-oob": "query-jobs"}\n',
     ['{"error": {"class": "GenericError", "desc": "The command query-jobs does not support OOB"}}']),
    (b'{"execute": "query-jobs"}{"execute": "query-jobs"}\n', ['{"return": []}', '{"return": []}']),
    (b"{'execute': 'query-jobs'}\n", ['{"return": []}']),
    (b'{"execute": "query-jobs", "arguments": {"x": 1}}\n',
     ['{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}']),
    (b'"str"\n', ['{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}']),
    (b'{"execute": "query-jobs",\n "id": 9}\n', ['{"return": [], "id": 9}']),
]

ARGUMENTS = [
    (b'{"execute": "job-pause", "arguments": {}}\n',
     ['{"error": {"class": "GenericError", "desc": "Parameter \'id\' is missing"}}']),
    (b'{"execute": "job-pause", "arguments": {"id": 5}}\n',
     ['{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: string"}}']),
    (b'{"execute": "job-pause", "arguments": {"id": "nope"}}\n',
     ['{"error": {"class": "GenericError", "desc": "Job not found"}}']),
    (b'{"execute": "job-pause", "arguments": {"id": "nope", "x": 1}}\n',
     ['{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}']),
    (b'{"execute": "job-pause", "arguments": {"id": null}}\n',
     ['{"error": {"class": "GenericError", "desc": "Invalid parameter type for \'id\', expected: string"}}']),
]

UNKNOWN_JOBS = [
    *[
        (b'{"execute": "%s", "arguments": {"id": "nope"}}\n' % name.encode(),
         ['{"error": {"class": "GenericError", "desc": "Job not found"}}'])
        for name in ("job-resume", "job-cancel", "job-complete", "job-dismiss", "job-finalize")
    ],
    (b'{"execute": "block-job-cancel", "arguments": {"device": "nope"}}\n',
     ['{"error": {"class": "DeviceNotActive", "desc": "Block job \'nope\' not found"}}']),
    (b'{"execute": "block-job-pause", "arguments": {"device": "nope"}}\n',
     ['{"error": {"class": "DeviceNotActive", "desc": "Block job \'nope\' not found"}}']),
    (b'{"execute": "block-job-set-speed", "arguments": {"device": "nope", "speed": 1}}\n',
     ['{"error": {"class": "DeviceNotActive", "desc": "Block job \'nope\' not found"}}']),
    (b'{"execute": "block-job-complete", "arguments": {"device": "nope"}}\n',
     ['{"error": {"class": "DeviceNotActive", "desc": "Block job \'nope\' not found"}}']),
]

EMPTY_LISTS = [
    (b'{"execute": "query-jobs"}\n', ['{"return": []}']),
    (b'{"execute": "query-block-jobs"}\n', ['{"return": []}']),
]

#: The transcript's sections from "command before negotiation" to "empty job lists".
TRANSCRIPT = NOT_NEGOTIATED + MALFORMED + ARGUMENTS + UNKNOWN_JOBS + EMPTY_LISTS
