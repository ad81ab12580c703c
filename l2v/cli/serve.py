"""`l2v-serve ARTIFACT`: serve an artifact on Ray Serve (OpenAI-compatible `/v1/embeddings`).

Ctrl-C / SIGTERM: the application is deleted, Serve and the private Ray instance are shut down, exit 0.
"""
from __future__ import annotations

import argparse
import sys


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="l2v-serve", description=__doc__.splitlines()[0])
    p.add_argument("artifact", help="artifact directory (made by l2v-export)")
    p.add_argument("--variant", default=None, help="variant to serve (default: the artifact's default)")
    p.add_argument("--backend", default=None, choices=("onnx", "torch"), help="default: whatever runs --variant")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--cpus-per-replica", type=float, default=1.0, help="Ray CPUs reserved per replica")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads per replica (ONNX Runtime / torch)")
    p.add_argument("--max-batch-size", type=int, default=32, help="texts per forward pass, across clients")
    p.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a batch waits to fill")
    p.add_argument("--max-batch-tokens", type=int, default=16384, help="padded tokens per forward pass")
    p.add_argument("--max-items", type=int, default=2048, help="inputs per request")
    p.add_argument("--max-request-tokens", type=int, default=131072, help="tokens per request, all inputs")
    p.add_argument("--model-name", default=None, help="the `model` clients send (default: the artifact dir name)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise every vector (OpenAI's convention)")
    p.add_argument("--matryoshka", action="store_true",
                   help="allow `dimensions` below the artifact's dim (implied for artifacts exported with --dim)")
    p.add_argument("--address", default=None,
                   help="join this Ray cluster (auto, HOST:6379, ray://HOST:10001) instead of a private instance")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs the private Ray instance offers")
    p.add_argument("--ray-temp-dir", default=None, help="the private Ray instance's temp dir (a short path)")
    p.add_argument("--ready-file", default=None, help="write a JSON line here once serving")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from l2v.cli.common import run_main

    args = parse_args(argv)

    def job():
        import os

        from l2v.serve.server import Launch, run_server
        from l2v.serve.service import ServeConfig

        config = ServeConfig(artifact=os.path.abspath(os.path.expanduser(args.artifact)), variant=args.variant,
                             backend=args.backend, device=args.device, threads=args.threads,
                             model_name=args.model_name, max_batch_size=args.max_batch_size,
                             batch_wait_ms=args.batch_wait_ms, max_batch_tokens=args.max_batch_tokens,
                             max_items=args.max_items, max_request_tokens=args.max_request_tokens,
                             normalize=args.normalize, matryoshka=args.matryoshka)
        launch = Launch(host=args.host, port=args.port, replicas=args.replicas,
                        cpus_per_replica=args.cpus_per_replica, address=args.address,
                        ray_temp_dir=args.ray_temp_dir, num_cpus=args.num_cpus, ready_file=args.ready_file)
        run_server(config, launch, say=lambda s: print(s, flush=True))

    return run_main(job, args.debug)


if __name__ == "__main__":
    sys.exit(main())
