"""Upload engine benchmarks (issue 3): caller blocking, time to durable-and-ready, peak memory, bursts.

Run: python benchmarks/bench_uploads.py [--quick]
Writes benchmarks/results/uploads.json. --quick shrinks the sizes for a smoke run (results not written).

(a) time update_weights blocks the caller, 16 MiB / 256 MiB / 2 GiB, with and without auto_delete_file
(b) call -> durable-and-ready vs shutil.copyfile+fsync (+sha256) and fsspec put_file, local and moto S3
(c) peak RSS growth during a 2 GiB upload (local and S3, in a fresh subprocess)
(d) 20 checkpoints of 256 MiB submitted back to back: longest call, all ready with correct hashes
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fsspec  # noqa: E402
from _common import MIB, make_file, moto_server, table, write_results  # noqa: E402

from modelyard import OutputModel, Task  # noqa: E402
from modelyard.testing import isolated_state  # noqa: E402


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_blocking(work: Path, sizes: list[int], repeats: int = 5) -> list[dict]:
    """Time the call alone, ``repeats`` times per case (median and max): one sample is at the mercy of the
    kernel's writeback of the file that was just written."""
    rows = []
    for size in sizes:
        src = work / f"a-{size}.bin"
        make_file(src, size)
        for auto_delete in (True, False):
            with isolated_state(work / f"home-a-{size}-{auto_delete}"):
                task = Task.init(project_name="bench", task_name="blocking")
                out = OutputModel(task)
                warm = work / "warm.bin"
                make_file(warm, MIB)
                out.update_weights(str(warm), auto_delete_file=True)  # first call opens the registry
                OutputModel.wait_for_uploads()
                times = []
                for i in range(repeats):
                    # A fresh name for the same just-written bytes: the caller hands over a new checkpoint.
                    copy = work / f"a-{size}-{auto_delete}-{i}.bin"
                    os.link(src, copy)
                    t0 = time.perf_counter()
                    out.update_weights(str(copy), auto_delete_file=auto_delete)
                    times.append(time.perf_counter() - t0)
                    OutputModel.wait_for_uploads()
                    copy.unlink(missing_ok=True)
                rows.append({"size_mib": size // MIB, "auto_delete_file": auto_delete, "repeats": repeats,
                             "blocked_ms_median": round(statistics.median(times) * 1000, 2),
                             "blocked_ms_max": round(max(times) * 1000, 2)})
        src.unlink(missing_ok=True)
    return rows


def bench_ready(work: Path, size: int, s3: bool, rounds: int = 3) -> dict:
    """Call -> durable-and-ready against the plain baselines, interleaved over ``rounds`` (medians): a single
    sample of a 2 GiB copy on a shared disk varies by 2x from one minute to the next."""
    src = work / f"b-{size}.bin"
    make_file(src, size)
    sha256_of(src)  # warm the page cache equally for every contender
    samples: dict[str, list[float]] = {}

    def timed(key: str, fn) -> None:
        t0 = time.perf_counter()
        fn()
        samples.setdefault(key, []).append(time.perf_counter() - t0)

    if s3:
        fs = fsspec.filesystem("s3")
        fs.mkdir("bench-bucket")
        destination = "s3://bench-bucket/modelyard"
    else:
        destination = str(work / "dest")
    dst = work / "copy.bin"
    for r in range(rounds):
        if s3:
            timed("fsspec_put_file_s", lambda: fs.put_file(str(src), "bench-bucket/put_file.bin"))
        else:
            timed("copyfile_fsync_s", lambda: (shutil.copyfile(src, dst), fsync_file(dst)))
            timed("sha256_s", lambda: sha256_of(src))
            dst.unlink()
            timed("fsspec_put_file_s", lambda: fsspec.filesystem("file").put_file(str(src), str(work / "put.bin")))
            (work / "put.bin").unlink()
        for auto_delete in (False, True):
            with isolated_state(work / f"home-b-{s3}-{auto_delete}-{r}"):
                out = OutputModel(Task.init(project_name="bench", task_name="ready"))
                copy = work / f"b-{size}-{auto_delete}.bin"
                os.link(src, copy) if auto_delete else shutil.copyfile(src, copy)
                key = "modelyard_ready_s_auto_delete" if auto_delete else "modelyard_ready_s"

                def call(out=out, copy=copy, auto_delete=auto_delete) -> None:
                    out.update_weights(str(copy), upload_uri=destination, auto_delete_file=auto_delete)
                    OutputModel.wait_for_uploads()

                timed(key, call)
                copy.unlink(missing_ok=True)
    result: dict = {"size_mib": size // MIB, "destination": "s3 (moto)" if s3 else "local", "rounds": rounds}
    result.update({k: round(statistics.median(v), 3) for k, v in samples.items()})
    if not s3:
        samples["copy_plus_hash_s"] = [c + h for c, h in zip(samples["copyfile_fsync_s"], samples["sha256_s"],
                                                             strict=True)]
        result["copy_plus_hash_s"] = round(statistics.median(samples["copy_plus_hash_s"]), 3)
        result["ratio_vs_copy_plus_hash"] = round(result["modelyard_ready_s"] / result["copy_plus_hash_s"], 3)
        result["ratio_auto_delete_vs_copy_plus_hash"] = round(
            result["modelyard_ready_s_auto_delete"] / result["copy_plus_hash_s"], 3)
    src.unlink()
    return result


RSS_CHILD = textwrap.dedent("""
    import sys, threading, time
    from modelyard import OutputModel, Task

    def rss_mib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

    src, destination = sys.argv[1], sys.argv[2]
    out = OutputModel(Task.init(project_name="bench", task_name="rss"))
    warm = src + ".warm"
    with open(warm, "wb") as f:
        f.write(b"warm")
    out.update_weights(warm, upload_uri=destination)  # one-off imports and connections before the baseline
    OutputModel.wait_for_uploads()
    # Sample the resident set every 5 ms: ru_maxrss would include peaks from before the baseline.
    peak, done = [0.0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.005)
    sampler = threading.Thread(target=sample)
    base = rss_mib()
    sampler.start()
    out.update_weights(src, upload_uri=destination, auto_delete_file=False)
    OutputModel.wait_for_uploads()
    done.set()
    sampler.join()
    print(max(peak[0], rss_mib()) - base)
""")



def bench_rss(work: Path, size: int, destination: str) -> float:
    src = work / "c.bin"
    if not src.exists():
        make_file(src, size)
    script = work / "rss_child.py"
    if destination.startswith("s3://"):
        fsspec.filesystem("s3").mkdir(destination[5:].split("/")[0])
    script.write_text(RSS_CHILD)
    env = {**os.environ, "MODELYARD_HOME": str(work / f"home-c-{destination[:2]}")}
    out = subprocess.run([sys.executable, str(script), str(src), destination], capture_output=True, text=True,
                         env=env, check=True)
    return round(float(out.stdout.strip()), 1)


def bench_burst(work: Path, count: int, size: int) -> dict:
    with isolated_state(work / "home-d"):
        out = OutputModel(Task.init(project_name="bench", task_name="burst"))
        files = []
        digests = []
        for i in range(count):
            path = work / f"d-{i}.bin"
            make_file(path, size, seed=i + 1)
            files.append(path)
            digests.append(sha256_of(path))
        out.update_weights(str(files[0]), auto_delete_file=False)  # opens the registry before timing
        OutputModel.wait_for_uploads()
        blocked = []
        t0 = time.perf_counter()
        for i, path in enumerate(files):
            s = time.perf_counter()
            out.update_weights(str(path), iteration=i)
            blocked.append(time.perf_counter() - s)
        submitted = time.perf_counter() - t0
        OutputModel.wait_for_uploads()
        total = time.perf_counter() - t0
        versions = out.versions[1:]
        ok = [v.state == "ready" and v.sha256 == d for v, d in zip(versions, digests, strict=False)]
        return {"checkpoints": count, "size_mib": size // MIB, "max_blocked_ms": round(max(blocked) * 1000, 2),
                "mean_blocked_ms": round(sum(blocked) / len(blocked) * 1000, 2),
                "submit_all_s": round(submitted, 3), "all_ready_s": round(total, 3),
                "all_ready_with_correct_hash": all(ok) and len(ok) == count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, results not written")
    args = parser.parse_args()
    big = 64 * MIB if args.quick else 2048 * MIB
    sizes = [16 * MIB, 64 * MIB] if args.quick else [16 * MIB, 256 * MIB, 2048 * MIB]
    mid = 32 * MIB if args.quick else 256 * MIB
    burst = (4, 16 * MIB) if args.quick else (20, 256 * MIB)
    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-", dir=os.environ.get("BENCH_DIR")))
    try:
        blocking = bench_blocking(work, sizes)
        table("(a) update_weights: time the caller is blocked", ["size MiB", "auto_delete_file", "median ms",
                                                                 "max ms"],
              [[r["size_mib"], r["auto_delete_file"], r["blocked_ms_median"], r["blocked_ms_max"]]
               for r in blocking])

        ready = [bench_ready(work, mid, s3=False), bench_ready(work, big, s3=False)]
        with moto_server():
            ready.append(bench_ready(work, mid, s3=True, rounds=1))
            rss_s3 = bench_rss(work, big, "s3://bench-rss/modelyard")
        rss_local = bench_rss(work, big, str(work / "dest-rss"))
        table("(b) call -> durable-and-ready (seconds)",
              ["MiB", "destination", "copy+fsync", "sha256", "copy+hash", "fsspec put", "modelyard",
               "modelyard auto_delete", "ratio", "ratio auto_delete"],
              [[r["size_mib"], r["destination"], r.get("copyfile_fsync_s", "-"), r.get("sha256_s", "-"),
                r.get("copy_plus_hash_s", "-"), r["fsspec_put_file_s"], r["modelyard_ready_s"],
                r["modelyard_ready_s_auto_delete"], r.get("ratio_vs_copy_plus_hash", "-"),
                r.get("ratio_auto_delete_vs_copy_plus_hash", "-")] for r in ready])
        rss = {"size_mib": big // MIB, "local_growth_mib": rss_local, "s3_growth_mib": rss_s3}
        table("(c) peak RSS growth during one upload", ["size MiB", "local MiB", "s3 (moto) MiB"],
              [[rss["size_mib"], rss_local, rss_s3]])

        burst_result = bench_burst(work, *burst)
        table("(d) checkpoints submitted back to back", list(burst_result), [list(burst_result.values())])

        targets = {
            "a_blocked_ms_median_largest_auto_delete<=5": max(
                r["blocked_ms_median"] for r in blocking
                if r["auto_delete_file"] and r["size_mib"] == sizes[-1] // MIB) <= 5,
            "b_ready_within_1.25x_copy_plus_hash_local": all(
                r[key] <= 1.25 for r in ready for key in ("ratio_vs_copy_plus_hash",
                                                          "ratio_auto_delete_vs_copy_plus_hash") if key in r),
            "c_peak_rss_growth<128MiB": rss_local < 128 and rss_s3 < 128,
            "d_no_call_blocks>50ms_and_all_ready": burst_result["max_blocked_ms"] <= 50
            and burst_result["all_ready_with_correct_hash"],
        }
        table("targets", ["target", "met"], [[k, v] for k, v in targets.items()])
        if not args.quick:
            path = write_results("uploads", {"blocking": blocking, "ready": ready, "rss": rss,
                                             "burst": burst_result, "targets": targets})
            print(f"\nwrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
