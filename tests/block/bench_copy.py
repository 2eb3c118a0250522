"""Copy-engine throughput against ``cp --sparse=always`` (not a test; run by hand).

    python tests/block/bench_copy.py DIR

Builds a 1 GiB random raw image and a 4 GiB sparse one with 256 MiB of data in
DIR, then times a full copy of each with chunk sizes of 1, 4 and 16 MiB, through
copy_file_range and through the forced pread/pwrite path, next to cp.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for helpers

from helpers.images import MiB, make_image

from qjobd.block import BlockGraph, copy_all, create_file


def make_images(directory: Path) -> tuple[Path, Path]:
    dense = directory / "random-1g.img"
    if not dense.exists():
        make_image(dense, 1 << 30, data=True)
    sparse = directory / "sparse-4g.img"
    if not sparse.exists():
        # 64 extents of 4 MiB spread over the image: 256 MiB of data.
        make_image(sparse, 4 << 30, [(index * (64 * MiB) + 3 * MiB, 4 * MiB)
                                     for index in range(64)])
    return dense, sparse


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        pass


def timed_cp(src: Path, dst: Path) -> float:
    dst.unlink(missing_ok=True)
    drop_caches()
    start = time.perf_counter()
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
    os.sync()
    return time.perf_counter() - start


def timed_copy(src: Path, dst: Path, chunk: int, copy_range: bool) -> float:
    dst.unlink(missing_ok=True)
    drop_caches()
    start = time.perf_counter()
    create_file(str(dst), src.stat().st_size)
    graph = BlockGraph()
    source = graph.add({"driver": "raw", "node-name": "s", "read-only": True,
                        "file": {"driver": "file", "filename": str(src)}})
    target = graph.add({"driver": "raw", "node-name": "t",
                        "file": {"driver": "file", "filename": str(dst)}})
    copy_all(source, target, chunk_size=chunk, target_zeroed=True, use_copy_range=copy_range)
    target.flush()
    graph.close_all()
    os.sync()
    return time.perf_counter() - start


def main() -> None:
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    for image in make_images(directory):
        dst = directory / "out.img"
        line = [f"{image.name}: cp --sparse=always {timed_cp(image, dst):.2f}s "
                f"({dst.stat().st_blocks * 512 // MiB} MiB used)"]
        for chunk in (1, 4, 16):
            for copy_range in (True, False):
                seconds = timed_copy(image, dst, chunk * MiB, copy_range)
                mode = "cfr" if copy_range else "rw"
                line.append(f"{chunk}M/{mode} {seconds:.2f}s "
                            f"({dst.stat().st_blocks * 512 // MiB} MiB)")
        print("\n  ".join(line))
        dst.unlink()


if __name__ == "__main__":
    main()
