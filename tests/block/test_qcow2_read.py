"""Reading qcow2 images that qemu-img and qemu-io made, checked against qemu-img.

Every image here is read whole through a qcow2 node and compared with what
``qemu-img convert -O raw`` makes of it; block status is compared with
``qemu-img map``.  The shapes cover what the format allows: versions 2 and 3,
cluster sizes from 512 B to 2 MiB, zero clusters, compressed clusters (deflate and
zstd), extended L2 entries with subclusters, backing chains of depth 1, 3 and 10
with backing files named relatively and absolutely, raw backing files, and a
sparse image past 4 GiB.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.images import MiB
from helpers.qcow2 import make_chain, make_qcow2, qcow2_opts, qemu_io, raw_content, run

from qjobd.block import BlockGraph, BlockStatus
from qjobd.block.node import BlockNode
from qjobd.errors import QMPError

KiB = 1 << 10


def read_all(node: BlockNode, step: int = 3 * MiB + 512) -> bytes:
    """The node's whole content, read in steps that cross cluster and table edges."""
    out = bytearray()
    size = node.length()
    for offset in range(0, size, step):
        out += node.pread(offset, min(step, size - offset))
    return bytes(out)


def assert_reads_like_qemu(graph: BlockGraph, image: Path, tmp_path: Path,
                           **extra: object) -> BlockNode:
    node = graph.add(qcow2_opts("q", image, **{"read-only": True, **extra}))
    expected = raw_content(image, tmp_path / "expected.raw")
    assert node.length() == len(expected)
    assert read_all(node) == expected
    return node


def scribble(image: Path, cluster: int) -> None:
    """Data, a zero range, an overwrite and a tail write at cluster-unfriendly offsets."""
    qemu_io(image,
            f"write -P 0x11 {cluster // 2} {3 * cluster}",
            f"write -z {5 * cluster} {2 * cluster}",
            f"write -P 0x22 {9 * cluster + 100} 1000",
            "write -P 0x33 1M 192k")


@pytest.mark.parametrize("cluster_size", [512, 4 * KiB, 64 * KiB, 2 * MiB])
@pytest.mark.parametrize("compat", ["0.10", "1.1"])
def test_versions_and_cluster_sizes(graph: BlockGraph, tmp_path: Path,
                                    cluster_size: int, compat: str) -> None:
    image = make_qcow2(tmp_path / "a.qcow2", 24 * cluster_size + 4 * MiB,
                       cluster_size=cluster_size, compat=compat)
    scribble(image, cluster_size)
    assert_reads_like_qemu(graph, image, tmp_path)


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
def test_compressed_clusters(graph: BlockGraph, tmp_path: Path, compression: str) -> None:
    if compression == "zstd":
        pytest.importorskip("zstandard")
    source = make_qcow2(tmp_path / "src.qcow2", 8 * MiB)
    qemu_io(source, "write -P 0x41 0 3M", "write -P 0x42 5M 100k")
    image = tmp_path / "c.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", "-o",
        f"compression_type={compression}", str(source), str(image))
    node = assert_reads_like_qemu(graph, image, tmp_path)
    assert node.block_status(0, 8 * MiB)[0] is BlockStatus.DATA


def test_extended_l2_subclusters(graph: BlockGraph, tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", 8 * MiB)
    qemu_io(base, "write -P 0x55 0 8M")
    image = make_qcow2(tmp_path / "x.qcow2", 8 * MiB, backing=base, extended_l2="on",
                       cluster_size="128k")
    # Subclusters are 4 KiB: writes of parts of a cluster leave the rest to the base.
    qemu_io(image, "write -P 0x66 4k 4k", "write -z 64k 8k", "write -P 0x77 1M 200k")
    assert_reads_like_qemu(graph, image, tmp_path)


@pytest.mark.parametrize("depth", [1, 3, 10])
def test_backing_chains(graph: BlockGraph, tmp_path: Path, depth: int) -> None:
    """Each layer writes its own stripe and zeroes part of the one below."""
    images = [make_qcow2(tmp_path / "l0.qcow2", 16 * MiB)]
    qemu_io(images[0], "write -P 0x10 0 16M")
    for level in range(1, depth + 1):
        layer = make_qcow2(tmp_path / f"l{level}.qcow2", 16 * MiB,
                           backing=Path(images[-1].name))
        qemu_io(layer, f"write -P {level} {level * 1024 * KiB} 300k",
                f"write -z {level * 1024 * KiB + 512 * KiB} 64k")
        images.append(layer)
    node = assert_reads_like_qemu(graph, images[-1], tmp_path)
    # The chain was opened from the headers: one node per image, read-only below.
    chain = []
    current: BlockNode | None = node
    while current is not None:
        chain.append(current)
        current = current.backing
    assert len(chain) == depth + 1
    assert all(n.read_only for n in chain)
    assert chain[-1].child("file").exact_filename() == str(images[0])


def test_raw_backing_file_and_shorter_backing(graph: BlockGraph, tmp_path: Path) -> None:
    """A raw base shorter than the overlay: reads past its end are zeroes."""
    base = tmp_path / "base.raw"
    base.write_bytes(b"\xab" * (3 * MiB))
    image = make_qcow2(tmp_path / "o.qcow2", 8 * MiB, backing=base, backing_fmt="raw")
    qemu_io(image, "write -P 1 2M 2M")
    node = assert_reads_like_qemu(graph, image, tmp_path)
    assert node.backing is not None
    assert node.backing.driver == "raw"


def test_backing_format_probed_when_header_has_none(graph: BlockGraph,
                                                    tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", 4 * MiB)
    qemu_io(base, "write -P 7 0 4M")
    image = tmp_path / "o.qcow2"
    # qemu-img refuses to create an overlay without a format; rebase -u writes one.
    make_qcow2(image, 4 * MiB)
    run("qemu-img", "rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", str(image))
    with open(image, "r+b") as f:
        header = bytearray(f.read(4096))
        # Turn the backing format extension into an unknown one (the name stays).
        pos = header.find(b"\xe2\x79\x2a\xca")
        assert pos > 0
        header[pos:pos + 4] = b"\x12\x34\x56\x78"
        f.seek(0)
        f.write(header)
    node = assert_reads_like_qemu(graph, image, tmp_path)
    assert node.backing is not None
    assert node.backing.driver == "qcow2"


def test_backing_option_overrides_the_header(graph: BlockGraph, tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", 4 * MiB)
    qemu_io(base, "write -P 9 0 4M")
    other = make_qcow2(tmp_path / "other.qcow2", 4 * MiB)
    qemu_io(other, "write -P 5 0 4M")
    image = make_qcow2(tmp_path / "o.qcow2", 4 * MiB, backing=base)
    qemu_io(image, "write -P 1 1M 64k")

    alone = graph.add(qcow2_opts("alone", image, **{"read-only": True, "backing": None}))
    assert alone.backing is None
    assert alone.pread(0, 4) == bytes(4)
    assert alone.pread(MiB, 4) == b"\x01" * 4

    graph.add(qcow2_opts("other", other, **{"read-only": True}))
    swapped = graph.add(qcow2_opts("swapped", image,
                                   **{"read-only": True, "backing": "other"}))
    assert swapped.pread(0, 4) == b"\x05" * 4
    inline = graph.add(qcow2_opts("inline", image, **{
        "read-only": True, "backing": qcow2_opts(None, other, **{"read-only": True})}))
    assert inline.pread(0, 4) == b"\x05" * 4


def test_sparse_image_past_4_gib(graph: BlockGraph, tmp_path: Path) -> None:
    """L1 entries past the 32-bit range; only the written parts are read back."""
    image = make_qcow2(tmp_path / "big.qcow2", "6G")
    qemu_io(image, "write -P 0x61 4095M 2M", "write -P 0x62 6143M 1M")
    node = graph.add(qcow2_opts("q", image, **{"read-only": True}))
    assert node.length() == 6 << 30
    assert node.pread((4095 << 20) - 4, 8) == bytes(4) + b"\x61" * 4
    assert node.pread((4097 << 20) - 4, 8) == b"\x61" * 4 + bytes(4)
    assert node.pread((6 << 30) - 8, 8) == b"\x62" * 8
    # One L2 table covers 512 MiB at 64 KiB clusters: runs stop at its end.
    assert node.block_status(0, 6 << 30) == (BlockStatus.ZERO, 512 * MiB)


def test_block_status_matches_qemu_img_map(graph: BlockGraph, tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", 8 * MiB)
    qemu_io(base, "write -P 1 0 2M")
    image = make_qcow2(tmp_path / "o.qcow2", 8 * MiB, backing=base)
    qemu_io(image, "write -P 2 1M 2M", "write -z 512k 128k", "write -P 3 6M 64k")
    node = graph.add(qcow2_opts("q", image, **{"read-only": True}))
    extents = json.loads(run("qemu-img", "map", "--output=json", str(image)))
    for extent in extents:
        start, length = extent["start"], extent["length"]
        position = start
        while position < start + length:
            kind, count = node.block_status(position, start + length - position)
            expected = BlockStatus.DATA if extent["data"] else BlockStatus.ZERO
            assert kind is expected, (extent, position)
            position += count


def test_allocated_here_tells_top_from_backing(graph: BlockGraph, tmp_path: Path) -> None:
    base = make_qcow2(tmp_path / "base.qcow2", 4 * MiB)
    qemu_io(base, "write -P 1 0 4M")
    image = make_qcow2(tmp_path / "o.qcow2", 4 * MiB, backing=base)
    qemu_io(image, "write -P 2 1M 128k", "write -z 2M 64k")
    node = graph.add(qcow2_opts("q", image, **{"read-only": True}))
    assert node.allocated_here(0, 4 * MiB) == (False, MiB)
    assert node.allocated_here(MiB, 4 * MiB) == (True, 128 * KiB)
    assert node.allocated_here(2 * MiB, 4 * MiB) == (True, 64 * KiB)


def test_internal_snapshots_are_listed(graph: BlockGraph, tmp_path: Path) -> None:
    image = make_qcow2(tmp_path / "s.qcow2", 4 * MiB)
    qemu_io(image, "write -P 1 0 64k")
    run("qemu-img", "snapshot", "-c", "first", str(image))
    qemu_io(image, "write -P 2 0 64k")
    run("qemu-img", "snapshot", "-c", "second", str(image))
    node = assert_reads_like_qemu(graph, image, tmp_path)
    listed = json.loads(run("qemu-img", "info", "--output=json", str(image)))["snapshots"]
    info = node.info(flat=True)["image"]["snapshots"]
    assert [(s["id"], s["name"]) for s in info] == [(s["id"], s["name"]) for s in listed]
    assert [s["date-sec"] for s in info] == [s["date-sec"] for s in listed]


def test_backing_loops_are_refused(graph: BlockGraph, tmp_path: Path) -> None:
    """An image naming itself, and two naming each other: an error, never a hang."""
    selfish = make_qcow2(tmp_path / "self.qcow2", 1 * MiB)
    run("qemu-img", "rebase", "-u", "-b", "self.qcow2", "-F", "qcow2", str(selfish))
    with pytest.raises(QMPError, match=r"^Could not open backing file: .*loops"):
        graph.add(qcow2_opts("q", selfish, **{"read-only": True}))
    a = make_qcow2(tmp_path / "a.qcow2", 1 * MiB)
    b = make_qcow2(tmp_path / "b.qcow2", 1 * MiB, backing=a)
    run("qemu-img", "rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", str(a))
    with pytest.raises(QMPError, match=r"^Could not open backing file: .*loops"):
        graph.add(qcow2_opts("q", b, **{"read-only": True}))
    # A hard link is the same file under another name: still a loop.
    os.link(selfish, tmp_path / "alias.qcow2")
    run("qemu-img", "rebase", "-u", "-b", "alias.qcow2", "-F", "qcow2", str(selfish))
    with pytest.raises(QMPError, match="loops"):
        graph.add(qcow2_opts("q", selfish, **{"read-only": True}))
    assert len(graph) == 0


def test_deep_chain_is_refused_not_crashed(graph: BlockGraph, tmp_path: Path) -> None:
    """A chain deeper than qjobd's bound is a clean error, nothing left open."""
    from qjobd.block import graph as graph_module
    depth = graph_module.MAX_BACKING_DEPTH
    previous = make_qcow2(tmp_path / "l0.qcow2", 64 * KiB)
    # Building 1,000 images with qemu-img would take minutes; copy one header and
    # point each at the previous file instead.
    template = previous.read_bytes()
    for level in range(1, depth + 2):
        layer = tmp_path / f"l{level}.qcow2"
        layer.write_bytes(template)
        _set_backing(layer, previous.name)
        previous = layer
    with pytest.raises(QMPError, match="deeper than"):
        graph.add(qcow2_opts("q", previous, **{"read-only": True}))
    assert len(graph) == 0
    # The deepest chain allowed works for everything that walks it.
    node = graph.add(qcow2_opts("q", tmp_path / f"l{depth}.qcow2", **{"read-only": True}))
    assert node.pread(0, 4096) == bytes(4096)
    assert node.info(flat=False)["backing_file_depth"] == depth
    node.flush()
    graph.delete("q")
    assert len(graph) == 0


def _set_backing(image: Path, name: str) -> None:
    """Write a backing file name right after the header extensions' end marker."""
    data = bytearray(image.read_bytes())
    header_length = int.from_bytes(data[100:104], "big")
    # Walk the extensions to their end marker.
    offset = header_length
    while int.from_bytes(data[offset:offset + 4], "big"):
        length = int.from_bytes(data[offset + 4:offset + 8], "big")
        offset += 8 + (length + 7) // 8 * 8
    name_offset = offset + 8
    encoded = name.encode()
    data[name_offset:name_offset + len(encoded)] = encoded
    data[8:16] = name_offset.to_bytes(8, "big")
    data[16:20] = len(encoded).to_bytes(4, "big")
    image.write_bytes(bytes(data))


def test_host_extents_point_at_the_data(graph: BlockGraph, tmp_path: Path) -> None:
    """What the copy engine hands to copy_file_range is the guest's data, run by
    run, also when qemu-io wrote the clusters out of order."""
    image = make_qcow2(tmp_path / "h.qcow2", 8 * MiB)
    qemu_io(image, "write -P 3 4M 1M", "write -P 1 0 1M", "write -P 2 6M 64k",
            "write -z 2M 1M")
    node = graph.add(qcow2_opts("q", image, **{"read-only": True}))
    position = 0
    seen = 0
    while position < node.length():
        extent = node.host_extent(position, node.length() - position)
        kind, count = node.block_status(position, node.length() - position)
        if extent is None:
            assert kind is BlockStatus.ZERO
            position += count
            continue
        fd, host, length = extent
        assert os.pread(fd, length, host) == node.pread(position, length)
        seen += length
        position += length
    assert seen == 2 * MiB + 64 * KiB


def test_host_extents_follow_the_backing_chain(graph: BlockGraph, tmp_path: Path) -> None:
    """Where the top allocates nothing, its host extents are its backing image's:
    each run read straight from the file it names is what the top shows there."""
    images = make_chain(tmp_path, 3, size=8 * MiB, cluster_size=4 * KiB)
    node = graph.add(qcow2_opts("q", images[-1], **{"read-only": True}))
    expected = raw_content(images[-1], tmp_path / "expected.raw")
    files = set()
    position = 0
    seen = 0
    while position < node.length():
        extent = node.host_extent(position, node.length() - position)
        kind, count = node.block_status(position, node.length() - position)
        if extent is None:
            assert kind is BlockStatus.ZERO, position
            position += count
            continue
        fd, host, length = extent
        assert length <= count
        assert os.pread(fd, length, host) == expected[position:position + length], position
        files.add(os.fstat(fd).st_ino)
        seen += length
        position += length
    # l0's data half, and each layer's own stripe, from four different files.
    assert len(files) == 4
    assert seen >= 4 * MiB
