"""Start Ray Serve with the embeddings application, wait for Ctrl-C / SIGTERM, shut everything down.

Local by default: a private single-node Ray instance, stopped on exit. `address` joins an existing
cluster instead (Serve is started there with our HTTP options unless it already runs, whose options then
stay; on exit only our application is deleted, the cluster and its Serve keep running).
What this module handles because Ray does not (each one measured on Ray 2.60):

- a busy port is only noticed once Ray and the proxy are up (tens of seconds): it is checked first;
- a private instance swaps 127.0.0.1 for the host's outward address unless
  `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` is set before Ray is imported;
- `ray.init` installs its own SIGTERM handler (kill the node, exit 1): ours is put back after it;
- a second Ctrl-C during shut-down must not abort the clean-up: signals are ignored from then on.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass

from l2v.errors import InputError, OptionalDependencyError
from l2v.serve.service import ServeConfig, default_model_name

APP_NAME = "l2v"


@dataclass
class Launch:
    """Where and how to run (not needed by the replicas)."""
    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int = 1
    cpus_per_replica: float = 1.0
    address: str | None = None  # join this Ray cluster; None: a private instance
    ray_temp_dir: str | None = None
    num_cpus: int | None = None  # CPUs the private instance offers (default: all)
    ready_file: str | None = None  # a JSON line written once serving (for supervisors and tests)

    def check(self) -> "Launch":
        if not 0 < self.port < 65536:
            raise InputError(f"--port {self.port} must be in 1..65535")
        if self.replicas < 1:
            raise InputError(f"--replicas {self.replicas} must be >= 1")
        if self.cpus_per_replica <= 0:
            raise InputError(f"--cpus-per-replica {self.cpus_per_replica} must be > 0")
        return self


def check_artifact(config: ServeConfig) -> None:
    """Fail in a second, before Ray starts, on a path that is not an artifact or a variant it lacks."""
    from l2v.artifact import read_manifest
    from l2v.runtime.encoder import choose_variant

    manifest = read_manifest(os.path.abspath(os.path.expanduser(config.artifact)))
    choose_variant(manifest, config.backend, config.variant)


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror}",
                             hint="pick another --port, or stop what is using it") from None


def _import_ray():
    try:
        import ray
        from ray import serve
    except ImportError:
        raise OptionalDependencyError("ray[serve]", "serve", "l2v-serve") from None
    return ray, serve


class _Stop:
    """SIGINT/SIGTERM set an event; `own()` (re)installs the handlers after Ray installed its own."""

    def __init__(self):
        self.event = threading.Event()

    def _handler(self, signum, frame):
        self.event.set()

    def own(self) -> None:
        signal.signal(signal.SIGINT, self._handler)
        signal.signal(signal.SIGTERM, self._handler)

    @staticmethod
    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_server(config: ServeConfig, launch: Launch, say=print) -> None:
    """Serve until SIGINT/SIGTERM; returns after a clean shut-down (raises `L2VError` on bad input)."""
    config.check()
    launch.check()
    check_artifact(config)
    private = launch.address is None
    if private:
        check_port_free(launch.host, launch.port)
        # a private single-node instance talks over loopback only: without this Ray swaps 127.0.0.1 for
        # the host's outward address (services.resolve_ip_for_localhost) and its processes talk over that
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray, serve = _import_ray()
    from l2v.serve.ray_app import build_app

    stop = _Stop()
    stop.own()
    t0 = time.perf_counter()
    init_kw = dict(include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    if private:
        init_kw.update(address="local", object_store_memory=100 * 1024 * 1024, _temp_dir=launch.ray_temp_dir,
                       num_cpus=launch.num_cpus)
        init_kw = {k: v for k, v in init_kw.items() if v is not None}
    else:
        init_kw["address"] = launch.address
    try:
        ray.init(**init_kw)
        stop.own()
        t_ray = time.perf_counter() - t0
        if stop.event.is_set():
            return
        # on a cluster whose Serve already runs, its HTTP options stay (Ray says so in one line)
        serve.start(http_options={"host": launch.host, "port": launch.port},
                    logging_config={"log_level": "WARNING", "enable_access_log": False})
        serve.run(build_app(config, launch.replicas, launch.cpus_per_replica), name=APP_NAME, route_prefix="/",
                  blocking=False)
        stop.own()
        _ready(config, launch, t_ray, time.perf_counter() - t0, say)
        while not stop.event.wait(0.5):
            pass
        say("l2v-serve: stopping")
    finally:
        stop.ignore()
        try:
            if ray.is_initialized():
                if private:
                    serve.shutdown()
                else:
                    serve.delete(APP_NAME)
        finally:
            ray.shutdown()


def _ready(config: ServeConfig, launch: Launch, t_ray: float, t_ready: float, say) -> None:
    host = f"[{launch.host}]" if ":" in launch.host else launch.host
    url = f"http://{host}:{launch.port}"
    name = config.model_name or default_model_name(config.artifact)
    say(f"l2v-serve: serving {name} at {url}/v1/embeddings (Ray up in {t_ray:.1f}s, ready in {t_ready:.1f}s); "
        "Ctrl-C to stop")
    if launch.ready_file:
        from l2v.fileio import atomic_write_text

        info = {"url": url, "model": name, "ray_init_s": round(t_ray, 2), "ready_s": round(t_ready, 2),
                "pid": os.getpid()}
        atomic_write_text(launch.ready_file, json.dumps(info) + "\n")
