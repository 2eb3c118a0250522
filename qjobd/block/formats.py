"""Which block drivers qjobd has, and everything decided per image format.

One :class:`FormatRegistry` answers every question a command asks about a driver
name: which node class ``blockdev-add`` opens, what format an existing image has
(probing by magic), whether ``drive-backup``/``drive-mirror`` can create an image in
it, what options open it as a job's target, and what ``blockdev-create`` does for it.
Adding a format is one :class:`ImageFormat` registration; no command changes.

The registry also knows the names QEMU 7.2 has (the schema's ``BlockdevDriver``
enum), because QEMU's wording depends on it: a name QEMU does not know is an
"Unknown driver", one QEMU knows but cannot create is refused with QEMU's text, and
one QEMU knows and qjobd has not implemented gets :func:`unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import attrs

from qjobd.block.blkdebug import BlkdebugNode
from qjobd.block.create import FileCreation, create_file
from qjobd.block.file import FileNode, open_error
from qjobd.block.node import BlockNode
from qjobd.block.null import NullNode
from qjobd.block.qcow2.create import NodeRefs, Qcow2Creation, create_file_image
from qjobd.block.qcow2.header import MAGIC as QCOW2_MAGIC
from qjobd.block.qcow2.node import Qcow2Node
from qjobd.block.raw import RawNode
from qjobd.errors import QMPError

__all__ = [
    "DEFAULT_FORMATS",
    "FormatRegistry",
    "ImageCreation",
    "ImageFormat",
    "unsupported",
]

#: How much of a file probing reads.
PROBE_BYTES: Final = 512

#: Drivers QEMU has but cannot create images with (no bdrv_co_create_opts).
NOT_CREATABLE: Final = frozenset({
    "blkdebug", "blklogreplay", "blkreplay", "blkverify", "bochs", "cloop", "compress",
    "copy-before-write", "copy-on-read", "dmg", "ftp", "ftps", "http", "https",
    "null-aio", "null-co", "preallocate", "quorum", "replication", "snapshot-access",
    "throttle", "vvfat",
})

#: Drivers whose images QEMU 7.2 creates with blockdev-create (bdrv_co_create).
BLOCKDEV_CREATE_DRIVERS: Final = frozenset({
    "file", "gluster", "luks", "nfs", "parallels", "qcow", "qcow2", "qed", "rbd",
    "ssh", "vdi", "vhdx", "vmdk", "vpc",
})

#: Drivers whose only filename is their own "<name>://" (bdrv_open with a path).
NAMED_BY_PROTOCOL: Final = frozenset({"null-aio", "null-co"})

#: Magic numbers of formats QEMU probes that qjobd does not implement: probing
#: still recognises them, so the client hears "not supported" and not garbage.
FOREIGN_MAGIC: Final[dict[bytes, str]] = {}


def unsupported(fmt: str) -> QMPError:
    """The refusal for a format QEMU has and qjobd does not (no QSD text fits)."""
    return QMPError(f"Image format '{fmt}' is not supported by qjobd")


class ImageCreation(Protocol):
    """What ``blockdev-create`` runs for one driver: a quick check, then the work."""

    def check(self) -> None:
        """On the event loop, before the job first yields; raises QMPError."""

    def create(self) -> None:
        """Blocking (a worker thread runs it); raises QMPError."""

    def close(self) -> None:
        """On the event loop once the job is over, whatever happened."""


@attrs.frozen
class ImageFormat:
    """One driver qjobd implements."""

    #: The BlockdevDriver name.
    name: str
    #: What blockdev-add opens for ``driver: name``.
    node_class: type[BlockNode]
    #: An image file can be in this format: drive-backup and drive-mirror may open
    #: (and, with ``create_image``, create) their target in it.
    image_file: bool = False
    #: The bytes an image of this format starts with, for probing; None: never probed
    #: (raw is what an image without a known magic is).
    magic: bytes | None = None
    #: A further test of the first bytes once the magic matched (QEMU's probe
    #: scores, e.g. qcow2 wants a version of at least 2); None: the magic decides.
    probe_check: Callable[[bytes], bool] | None = None
    #: New empty image (path, size, backing file, backing format) for drive-backup and
    #: drive-mirror; None: refused.
    create_image: Callable[[str, int, str | None, str | None], None] | None = None
    #: Whether a new image can name a backing file (sync=none targets need one).
    supports_backing: bool = False
    #: blockdev-create's work for this driver's options (None: QEMU's refusal).
    blockdev_create: Callable[[Any, NodeRefs], ImageCreation] | None = None


def _create_raw(path: str, size: int, backing_file: str | None,
                backing_format: str | None) -> None:
    create_file(path, size)


DEFAULT_FORMATS: Final = (
    ImageFormat("file", FileNode, image_file=True, create_image=_create_raw,
                blockdev_create=FileCreation),
    ImageFormat("raw", RawNode, image_file=True, create_image=_create_raw),
    ImageFormat("null-co", NullNode),
    ImageFormat("blkdebug", BlkdebugNode),
    ImageFormat("qcow2", Qcow2Node, image_file=True, magic=QCOW2_MAGIC,
                probe_check=lambda head: int.from_bytes(head[4:8], "big") >= 2,
                create_image=create_file_image, supports_backing=True,
                blockdev_create=Qcow2Creation),
)


class FormatRegistry:
    """The formats qjobd implements, against the names QEMU knows.

    :param formats: the implemented formats.
    :param qemu_drivers: every BlockdevDriver name of the schema; None means only the
        implemented ones (pure block-layer tests).
    """

    def __init__(self, formats: Iterable[ImageFormat] = DEFAULT_FORMATS,
                 qemu_drivers: Iterable[str] | None = None) -> None:
        self._formats: dict[str, ImageFormat] = {}
        for image_format in formats:
            self.register(image_format)
        if qemu_drivers is None:
            qemu_drivers = {*self._formats, *NOT_CREATABLE, *FOREIGN_MAGIC.values()}
        self._qemu_drivers = frozenset(qemu_drivers)

    def register(self, image_format: ImageFormat) -> None:
        if image_format.name in self._formats:
            raise ValueError(f"format {image_format.name!r} registered twice")
        self._formats[image_format.name] = image_format

    def __contains__(self, name: object) -> bool:
        return name in self._formats

    def known_to_qemu(self, name: str) -> bool:
        return name in self._qemu_drivers or name in self._formats

    # Section: blockdev-add

    def node_class(self, driver: str) -> type[BlockNode]:
        """The node class for ``driver``, or QEMU's answer for a driver not built in."""
        image_format = self._formats.get(driver)
        if image_format is None:
            raise QMPError(f"Unknown driver '{driver}'")
        return image_format.node_class

    # Section: images that drive-backup and drive-mirror open or create

    def probe(self, path: str) -> str:
        """The format of the existing image at ``path``: by magic, else raw."""
        try:
            with open(path, "rb") as image:
                head = image.read(PROBE_BYTES)
        except OSError as error:
            raise open_error(path, error) from error
        for image_format in self._formats.values():
            magic = image_format.magic
            if magic is not None and head.startswith(magic) and (
                    image_format.probe_check is None or image_format.probe_check(head)):
                return image_format.name
        for magic, name in FOREIGN_MAGIC.items():
            if head.startswith(magic):
                return name
        return "raw"

    def create_image(self, fmt: str, path: str, size: int, *,
                     backing: BlockNode | None = None) -> None:
        """bdrv_img_create's checks in its order, then a new empty image (blocking).

        ``backing``: the node the image names as its backing file, by its filename
        (absolute, as QEMU's absolute-paths mode writes it) and its format: the
        source for ``sync: none``, the source's backing file for ``sync: top``.
        """
        image_format = self._formats.get(fmt)
        if image_format is None or image_format.create_image is None:
            if not self.known_to_qemu(fmt):
                raise QMPError(f"Unknown file format '{fmt}'")
            if fmt in NOT_CREATABLE:
                raise QMPError(f"Format driver '{fmt}' does not support image creation")
            raise unsupported(fmt)
        if backing is None:
            image_format.create_image(path, size, None, None)
            return
        if not image_format.supports_backing:
            raise QMPError(f"Backing file not supported for file format '{fmt}'")
        name = backing.filename
        if name == path:
            raise QMPError("Error: Trying to create an image with the same filename as "
                           "the backing file")
        image_format.create_image(path, size, name, backing.format_name)

    def open_options(self, fmt: str | None, path: str, **top: Any) -> dict[str, Any]:
        """The blockdev options that open the image at ``path`` (probed when ``fmt``
        is None); ``top`` goes into the options of the format node."""
        if fmt is None:
            fmt = self.probe(path)
        image_format = self._formats.get(fmt)
        if image_format is None or not image_format.image_file:
            if not self.known_to_qemu(fmt):
                raise QMPError(f"Unknown driver '{fmt}'")
            if fmt in NAMED_BY_PROTOCOL:
                raise QMPError(f"The only allowed filename for this driver is '{fmt}://'")
            raise unsupported(fmt)
        if image_format.node_class.is_protocol:
            return {"driver": fmt, "filename": path, **top}
        return {"driver": fmt, **top, "file": {"driver": "file", "filename": path}}

    def supports_backing(self, fmt: str) -> bool:
        image_format = self._formats.get(fmt)
        return image_format is not None and image_format.supports_backing

    # Section: blockdev-create

    def blockdev_creation(self, driver: str, options: Any, nodes: NodeRefs) -> ImageCreation:
        """What blockdev-create runs for ``driver`` with its branch's ``options``."""
        image_format = self._formats.get(driver)
        if image_format is not None and image_format.blockdev_create is not None:
            return image_format.blockdev_create(options, nodes)
        if driver in BLOCKDEV_CREATE_DRIVERS:
            raise unsupported(driver)
        raise QMPError("Driver does not support blockdev-create")
