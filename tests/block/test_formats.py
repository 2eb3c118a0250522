"""The format registry: every per-format decision, in QEMU's words."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.qcow2 import check, info

from qjobd.block import BlockGraph
from qjobd.block.formats import FormatRegistry, ImageFormat
from qjobd.block.raw import RawNode
from qjobd.errors import QMPError

QEMU_NAMES = ["file", "raw", "null-co", "null-aio", "blkdebug", "qcow2", "vmdk", "nbd"]


@pytest.fixture
def formats() -> FormatRegistry:
    return FormatRegistry(qemu_drivers=QEMU_NAMES)


def refusal(call: object, *args: object, **kwargs: object) -> str:
    assert callable(call)
    with pytest.raises(QMPError) as caught:
        call(*args, **kwargs)
    return caught.value.desc


def test_node_classes(formats: FormatRegistry) -> None:
    assert formats.node_class("raw") is RawNode
    assert refusal(formats.node_class, "nbd") == "Unknown driver 'nbd'"


def test_probe(formats: FormatRegistry, tmp_path: Path) -> None:
    (tmp_path / "q").write_bytes(b"QFI\xfb\0\0\0\3" + bytes(100))
    (tmp_path / "r").write_bytes(b"QFI")
    (tmp_path / "e").write_bytes(b"")
    # QEMU's qcow2 probe also wants a version of 2 or more.
    (tmp_path / "v").write_bytes(b"QFI\xfb" + bytes(100))
    assert [formats.probe(str(tmp_path / n)) for n in "qrev"] == ["qcow2", "raw", "raw", "raw"]
    missing = str(tmp_path / "missing")
    assert refusal(formats.probe, missing) == (
        f"Could not open '{missing}': No such file or directory")


def test_create_image(formats: FormatRegistry, tmp_path: Path) -> None:
    path = str(tmp_path / "new.img")
    assert refusal(formats.create_image, "nosuch", path, 1 << 20) == (
        "Unknown file format 'nosuch'")
    assert refusal(formats.create_image, "null-co", path, 1 << 20) == (
        "Format driver 'null-co' does not support image creation")
    assert refusal(formats.create_image, "vmdk", path, 1 << 20) == (
        "Image format 'vmdk' is not supported by qjobd")
    graph = BlockGraph(formats)
    source = graph.add({"driver": "null-co", "node-name": "n"})
    assert refusal(formats.create_image, "raw", path, 1 << 20, backing=source) == (
        "Backing file not supported for file format 'raw'")
    assert not Path(path).exists()
    formats.create_image("raw", path, 1 << 20)
    assert Path(path).stat().st_size == 1 << 20
    # qcow2 names its backing file and format in the header, as qemu-img shows.
    image = tmp_path / "new.qcow2"
    formats.create_image("qcow2", str(image), 3 << 20, backing=source)
    described = info(image)
    assert (described["virtual-size"], described["backing-filename"],
            described["backing-filename-format"]) == (3 << 20, "null-co://", "null-co")
    check(image)
    graph.close_all()


def test_open_options(formats: FormatRegistry, tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(512))
    path = str(image)
    assert formats.open_options(None, path, **{"node-name": "t"}) == {
        "driver": "raw", "node-name": "t", "file": {"driver": "file", "filename": path}}
    assert formats.open_options("file", path, discard="unmap") == {
        "driver": "file", "filename": path, "discard": "unmap"}
    assert refusal(formats.open_options, "nosuch", path) == "Unknown driver 'nosuch'"
    assert refusal(formats.open_options, "null-co", path) == (
        "The only allowed filename for this driver is 'null-co://'")
    assert refusal(formats.open_options, "blkdebug", path) == (
        "Image format 'blkdebug' is not supported by qjobd")
    image.write_bytes(b"QFI\xfb\0\0\0\2" + bytes(504))
    assert formats.open_options(None, path) == {
        "driver": "qcow2", "file": {"driver": "file", "filename": path}}


def test_blockdev_create(formats: FormatRegistry) -> None:
    assert refusal(formats.blockdev_creation, "raw", None, None) == (
        "Driver does not support blockdev-create")
    assert refusal(formats.blockdev_creation, "vmdk", None, None) == (
        "Image format 'vmdk' is not supported by qjobd")


class Window(RawNode):
    """A stand-in for a new driver: raw under another name."""

    format_name = "window"


def test_a_new_format_is_one_registration(tmp_path: Path) -> None:
    formats = FormatRegistry()
    graph = BlockGraph(formats)
    image = tmp_path / "w.img"
    image.write_bytes(bytes(4096))
    options = {"driver": "window", "node-name": "w",
               "file": {"driver": "file", "filename": str(image)}}
    assert refusal(graph.add, options) == "Unknown driver 'window'"
    formats.register(ImageFormat("window", Window, image_file=True))
    assert graph.add(options).length() == 4096
    assert formats.open_options("window", str(image))["driver"] == "window"
    with pytest.raises(ValueError, match="registered twice"):
        formats.register(ImageFormat("window", Window))
    graph.close_all()
