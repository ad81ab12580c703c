"""The Ray Data executor: read -> map_batches(actor pool of encoders) -> write Parquet.

    read_datasource(WindowSource)          one row per window (ids, texts, instructions, positions);
                                           read tasks seek to their windows with the plan's offsets
    .map_batches(EncodeWindows, compute=ActorPoolStrategy(size=workers), batch_size=1, num_gpus=...)
                                           each actor loads the encoder once; a window in, its vectors out
    .write_datasink(PartSink)              each window's part written atomically, named by its window

A row is a whole window, never split or merged by Ray's block sizing, so every window is batched exactly
as the local executor batches it: same vectors, same part files, same resume (Ray's own
`write_parquet` names files by block and writes them in place, which would give neither).

A local Ray is started for the job (and shut down after it) unless `--ray ADDRESS` joins a cluster;
then DIR must be on a filesystem every node sees. Progress: the driver watches DIR for finished parts.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from l2v.embed.parts import PART_RE, part_meta
from l2v.embed.work import Work, decode_stored, embed_window, write_window


def _ray():
    from l2v.errors import OptionalDependencyError

    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise OptionalDependencyError("ray[data]", "ray", "l2v-embed --ray") from e
    return ray


# ---------------------------------------------------------------- read: one row per window
def _window_table(k: int, rows):
    import pyarrow as pa

    return pa.table({
        "window": pa.array([k], pa.int64()),
        "ids": pa.array([[r.id for r in rows]]),
        "texts": pa.array([[r.text for r in rows]], pa.list_(pa.string())),
        "instructions": pa.array([[r.instruction for r in rows]], pa.list_(pa.string())),
        "files": pa.array([[r.file for r in rows]], pa.list_(pa.int32())),
        "pos": pa.array([[r.pos for r in rows]], pa.list_(pa.int64())),
    })


def _read_windows(plan, ks):
    from l2v.embed.plan import windows

    for k, rows in windows(plan, ks):
        yield _window_table(k, rows)


def _window_source(plan, pending: list[int], tasks: int):
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class WindowSource(Datasource):
        """Contiguous runs of the pending windows, one read task per run."""

        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            n = max(1, min(tasks, len(pending)))
            groups = [pending[i * len(pending) // n:(i + 1) * len(pending) // n] for i in range(n)]
            return [ReadTask(lambda ks=ks: _read_windows(plan, ks),
                             BlockMetadata(num_rows=len(ks), size_bytes=None, exec_stats=None, input_files=None))
                    for ks in groups if ks]

    return WindowSource()


# ---------------------------------------------------------------- map: the encoder actors
class EncodeWindows:
    """An actor: the encoder is loaded once; each call embeds whole windows."""

    def __init__(self, work: Work):
        self.work = work
        self.encoder = work.open_encoder()

    def __call__(self, batch):
        import pyarrow as pa

        from l2v.embed.reader import Record

        out = {"window": [], "ids": [], "data": [], "n": [], "meta": []}
        for row in batch.to_pylist():
            rows = [Record(*t) for t in zip(row["ids"], row["texts"], row["instructions"], row["files"], row["pos"])]
            ids, stored, meta = embed_window(self.work, self.encoder, row["window"], rows)
            out["window"].append(row["window"])
            out["ids"].append(ids)
            out["data"].append(stored.tobytes())
            out["n"].append(len(ids))
            out["meta"].append(__import__("json").dumps(meta))
        id_type = pa.int64() if self.work.plan.id_kind == "integer" else pa.string()
        return pa.table({"window": pa.array(out["window"], pa.int64()),
                         "ids": pa.array(out["ids"], pa.list_(id_type)),
                         "data": pa.array(out["data"], pa.binary()),
                         "n": pa.array(out["n"], pa.int64()), "meta": pa.array(out["meta"], pa.string())})


# ---------------------------------------------------------------- write: one part per window
def _part_sink(work: Work):
    from ray.data.block import BlockAccessor
    from ray.data.datasource import Datasink

    class PartSink(Datasink):
        def write(self, blocks, ctx):
            import json

            written = 0
            for block in blocks:
                for row in BlockAccessor.for_block(block).to_arrow().to_pylist():
                    stored = decode_stored(work, row["data"], row["n"])
                    write_window(work, row["window"], row["ids"], stored, json.loads(row["meta"]))
                    written += 1
            return written

    return PartSink()


# ---------------------------------------------------------------- the driver
class _Watch(threading.Thread):
    """Feed the progress bar from the parts appearing in DIR (works for a remote cluster too)."""

    def __init__(self, out: Path, seen: set, progress, every: float = 0.5):
        super().__init__(daemon=True)
        self.out, self.seen, self.progress, self.every = out, seen, progress, every
        self.stop = threading.Event()

    def poll(self) -> None:
        for p in sorted(self.out.iterdir()):
            m = PART_RE.match(p.name)
            if m and int(m.group(1)) not in self.seen:
                try:
                    meta = part_meta(p)
                except (OSError, ValueError, KeyError):
                    continue
                self.seen.add(int(m.group(1)))
                self.progress.update(meta["rows"] + len(meta["skipped"]), meta["tokens"])

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.poll()


def _resources(ray, opts) -> tuple[float, float, int]:
    """(CPUs, GPUs) each actor asks for, and ONNX Runtime threads per actor."""
    total = ray.cluster_resources()
    cpus = max(1.0, float(total.get("CPU", 1)) // opts.workers)
    gpus = 0.0
    if opts.device == "cuda":
        have = float(total.get("GPU", 0))
        if have <= 0:
            from l2v.errors import InputError

            raise InputError("--device cuda, but the Ray cluster has no GPU")
        gpus = min(1.0, have / opts.workers)
    return cpus, gpus, opts.threads or int(cpus)


def _unwrap(e: BaseException) -> BaseException:
    """A Ray task's error carries ours (a bad row, an artifact error) somewhere in its chain (Ray's
    RayTaskError `.cause`, Ray Data's UserCodeException `__cause__`): raise that one, as if local."""
    todo, seen = [e], set()
    while todo:
        x = todo.pop(0)
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if type(x).__module__.startswith("l2v."):
            return x
        todo += [getattr(x, "cause", None), x.__cause__, x.__context__]
    return e


def run_on_ray(work: Work, pending: list[int], progress, opts) -> None:
    """Run the pending windows on Ray Data (window 0 first and alone when int8 needs its ranges)."""
    import dataclasses

    import logging

    ray = _ray()
    started = False
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    data_log.setLevel(logging.WARNING)  # no per-dataset INFO lines under our progress bar
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
        if opts.ray_address:
            ray.init(address=opts.ray_address, **quiet)
        else:
            ray.init(**{"num_cpus": os.cpu_count(), "include_dashboard": False, **quiet, **opts.ray_init})
        started = True
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.raise_original_map_exception = True  # an actor's RowError reaches us as itself
        cpus, gpus, threads = _resources(ray, opts)
        work = dataclasses.replace(work, threads=threads)
        out = Path(work.out)
        watch = _Watch(out, {int(PART_RE.match(p.name).group(1)) for p in out.iterdir() if PART_RE.match(p.name)},
                       progress)
        watch.start()
        try:
            if work.dtype == "int8" and work.ranges is None and pending and pending[0] == 0:
                _pipeline(ray, work, [0], opts.workers, cpus, gpus)
                ranges = part_meta(out / "part-000000.parquet")["int8_ranges"]
                work = dataclasses.replace(work, ranges=tuple(map(tuple, ranges)))
                pending = pending[1:]
            if pending:
                _pipeline(ray, work, pending, opts.workers, cpus, gpus)
        finally:
            watch.stop.set()
            watch.join()
            watch.poll()
    finally:
        data_log.setLevel(level)
        if started:
            ray.shutdown()


def _pipeline(ray, work: Work, pending: list[int], workers: int, cpus: float, gpus: float) -> None:
    from ray.data import ActorPoolStrategy

    import inspect

    tasks = max(1, min(len(pending), 2 * workers))
    light = {"num_cpus": 0}  # reading and writing are light: they must not wait for the encoders' CPUs
    named = "num_cpus" in inspect.signature(ray.data.read_datasource).parameters  # Ray >= 2.5x
    ds = ray.data.read_datasource(_window_source(work.plan, pending, tasks), override_num_blocks=tasks,
                                  **(light if named else {"ray_remote_args": light}))
    ds = ds.map_batches(EncodeWindows, fn_constructor_kwargs={"work": work}, batch_size=1, batch_format="pyarrow",
                        compute=ActorPoolStrategy(size=min(workers, len(pending))), num_cpus=cpus,
                        num_gpus=gpus or None)
    try:
        ds.write_datasink(_part_sink(work), ray_remote_args=light)
    except Exception as e:  # Ray wraps the task's own error (RayTaskError and friends)
        raise _unwrap(e) from None
