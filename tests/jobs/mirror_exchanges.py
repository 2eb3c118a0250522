"""Mirror exchanges recorded from qemu-storage-daemon 7.2 (timestamps removed).

From the project's reference transcripts: ``>`` is what the client sent, ``<`` what
came back, in order.  Paths under /tmp/X are the test's temporary directory; names
like #block071 are generated and compared as #blockN.
"""

# ruff: noqa: E501  (recorded lines are kept whole)
from __future__ import annotations

#: mirror: ready, standby, complete
READY_STANDBY_COMPLETE = [
    '> {"execute": "blockdev-mirror", "arguments": {"job-id": "m1", "device": "src", "target": "dst", "sync": "full"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "m1"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "running", "id": "m1"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "ready", "id": "m1"}}',
    '< {"event": "BLOCK_JOB_READY", "data": {"device": "m1", "len": 67108864, "offset": 67108864, "speed": 0, "type": "mirror"}}',
    '> {"execute": "query-jobs"}',
    '< {"return": [{"current-progress": 67108864, "status": "ready", "total-progress": 67108864, "type": "mirror", "id": "m1"}]}',
    '> {"execute": "job-pause", "arguments": {"id": "m1"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "standby", "id": "m1"}}',
    '< {"return": {}}',
    '> {"execute": "query-jobs"}',
    '< {"return": [{"current-progress": 67108864, "status": "standby", "total-progress": 67108864, "type": "mirror", "id": "m1"}]}',
    '> {"execute": "job-resume", "arguments": {"id": "m1"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "ready", "id": "m1"}}',
    '< {"return": {}}',
    '> {"execute": "job-complete", "arguments": {"id": "m1"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "waiting", "id": "m1"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "pending", "id": "m1"}}',
    '< {"event": "BLOCK_JOB_COMPLETED", "data": {"device": "m1", "len": 67108864, "offset": 67108864, "speed": 0, "type": "mirror"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "concluded", "id": "m1"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "null", "id": "m1"}}',
]

#: mirror: cancel when ready
CANCEL_WHEN_READY = [
    '> {"execute": "blockdev-mirror", "arguments": {"job-id": "m2", "device": "src", "target": "dst", "sync": "full"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "m2"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "running", "id": "m2"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "ready", "id": "m2"}}',
    '< {"event": "BLOCK_JOB_READY", "data": {"device": "m2", "len": 67108864, "offset": 67108864, "speed": 0, "type": "mirror"}}',
    '> {"execute": "block-job-cancel", "arguments": {"device": "m2"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "waiting", "id": "m2"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "pending", "id": "m2"}}',
    '< {"event": "BLOCK_JOB_COMPLETED", "data": {"device": "m2", "len": 67108864, "offset": 67108864, "speed": 0, "type": "mirror"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "concluded", "id": "m2"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "null", "id": "m2"}}',
]

#: job-cancel on a ready mirror aborts it (BLOCK_JOB_CANCELLED)
JOB_CANCEL_READY = [
    '> {"execute": "blockdev-mirror", "arguments": {"job-id": "m", "device": "a", "target": "b", "sync": "full"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "m"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "running", "id": "m"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "ready", "id": "m"}}',
    '< {"event": "BLOCK_JOB_READY", "data": {"device": "m", "len": 33554432, "offset": 33554432, "speed": 0, "type": "mirror"}}',
    '> {"execute": "query-block-jobs"}',
    '< {"return": [{"auto-finalize": true, "io-status": "ok", "device": "m", "auto-dismiss": true, "busy": false, "len": 33554432, "offset": 33554432, "status": "ready", "paused": false, "speed": 0, "ready": true, "type": "mirror"}]}',
    '> {"execute": "job-cancel", "arguments": {"id": "m"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "aborting", "id": "m"}}',
    '< {"event": "BLOCK_JOB_CANCELLED", "data": {"device": "m", "len": 33554432, "offset": 33554432, "speed": 0, "type": "mirror"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "concluded", "id": "m"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "null", "id": "m"}}',
]

#: drive-mirror then block-job-complete (pivot: the device now reads the copy)
DRIVE_MIRROR_COMPLETE = [
    '> {"execute": "drive-mirror", "arguments": {"job-id": "dm", "device": "a", "target": "/tmp/X/dm.img", "sync": "full", "format": "raw", "mode": "absolute-paths"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "dm"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "running", "id": "dm"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "ready", "id": "dm"}}',
    '< {"event": "BLOCK_JOB_READY", "data": {"device": "dm", "len": 33554432, "offset": 33554432, "speed": 0, "type": "mirror"}}',
    '> {"execute": "block-job-complete", "arguments": {"device": "dm"}}',
    '< {"return": {}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "waiting", "id": "dm"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "pending", "id": "dm"}}',
    '< {"event": "BLOCK_JOB_COMPLETED", "data": {"device": "dm", "len": 33554432, "offset": 33554432, "speed": 0, "type": "mirror"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "concluded", "id": "dm"}}',
    '< {"event": "JOB_STATUS_CHANGE", "data": {"status": "null", "id": "dm"}}',
    '> {"execute": "query-named-block-nodes", "arguments": {"flat": true}}',
    '< {"return": [{"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 33554432, "filename": "/tmp/X/b.img", "format": "raw", "actual-size": 33554432, "dirty-flag": false}, "iops_wr": 0, "ro": false, "node-name": "b", "backing_file_depth": 0, "drv": "raw", "iops": 0, "bps_wr": 0, "write_threshold": 0, "encrypted": false, "bps": 0, "bps_rd": 0, "cache": {"no-flush": false, "direct": false, "writeback": true}, "file": "/tmp/X/b.img"}, {"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 33554432, "filename": "/tmp/X/b.img", "format": "file", "actual-size": 33554432, "dirty-flag": false}, "iops_wr": 0, "ro": false, "node-name": "#block198", "backing_file_depth": 0, "drv": "file", "iops": 0, "bps_wr": 0, "write_threshold": 0, "encrypted": false, "bps": 0, "bps_rd": 0, "cache": {"no-flush": false, "direct": false, "writeback": true}, "file": "/tmp/X/b.img"}, {"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 33554432, "filename": "/tmp/X/a.img", "format": "raw", "actual-size": 33554432, "dirty-flag": false}, "iops_wr": 0, "ro": false, "node-name": "a", "backing_file_depth": 0, "drv": "raw", "iops": 0, "bps_wr": 0, "write_threshold": 0, "encrypted": false, "bps": 0, "bps_rd": 0, "cache": {"no-flush": false, "direct": false, "writeback": true}, "file": "/tmp/X/a.img"}, {"iops_rd": 0, "detect_zeroes": "off", "image": {"virtual-size": 33554432, "filename": "/tmp/X/a.img", "format": "file", "actual-size": 33554432, "dirty-flag": false}, "iops_wr": 0, "ro": false, "node-name": "#block071", "backing_file_depth": 0, "drv": "file", "iops": 0, "bps_wr": 0, "write_threshold": 0, "encrypted": false, "bps": 0, "bps_rd": 0, "cache": {"no-flush": false, "direct": false, "writeback": true}, "file": "/tmp/X/a.img"}]}',
]
