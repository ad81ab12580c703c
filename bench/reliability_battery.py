"""The failure battery of issue 12, run for real: each case as a careless user would cause it, what it
gives (exit code or exception, the one-line message) and what it leaves behind.

  python bench/reliability_battery.py [--work DIR] [--only 2a,9c]

A tiny random Llama (built in code, 131,072-position context) stands in for MODEL, so the whole battery
takes a few minutes on 2 cores; every process case is a real `python -m l2v.cli.*` process (killed,
terminated, run twice at once), the file-system faults are a real read-only / full tmpfs when this
machine lets us mount one (root with CAP_SYS_ADMIN), else the case says it was skipped. Writes
bench/results/reliability.{json,md} and the table in docs/reliability.md (between its markers).
The tests that pin each case: tests/reliability/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
RESULTS = REPO / "bench" / "results"
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- battery: begin (bench/reliability_battery.py writes this table) -->", "<!-- battery: end -->"
CONTEXT = 131072
ENV = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")


# ---------------------------------------------------------------------- helpers
def cli(module, *args):
    return [sys.executable, "-m", f"l2v.cli.{module}", *map(str, args)]


def error_line(text: str) -> str:
    keep = [ln for ln in text.splitlines() if ln.startswith(("error:", "terminated:", "interrupted:", "l2v: removed"))]
    return " / ".join(keep)[:400] or (text.strip().splitlines() or [""])[-1][:400]


def hidden(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def leftovers(parent: Path, name: str, inside: Path | None = None) -> str:
    items = hidden(parent, name)
    if inside is not None and inside.is_dir():
        items += [f"{inside.name}/{p.name}" for p in inside.iterdir() if p.name.startswith(".")]
    return ", ".join(items) or "none"


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=900, **kw)


def until(proc: subprocess.Popen, needle: str) -> str:
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise RuntimeError(f"never saw {needle!r}: {''.join(seen)[-1000:]}")


def killed_at(argv, needle: str, sig=signal.SIGKILL) -> tuple[int, str]:
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
    seen = until(p, needle)
    p.send_signal(sig)
    out, err = p.communicate()
    return p.returncode, seen + err


def mount_tmpfs(path: Path, size: str, ro: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    opts = f"size={size}" + (",ro" if ro else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def python_case(fn) -> tuple[str, str]:
    """(exception type or 'ok', its message) of calling `fn`."""
    try:
        fn()
        return "ok", ""
    except Exception as e:  # the battery records whatever happens
        return type(e).__name__, str(e).splitlines()[0][:400]


def edit(root: Path, fn) -> None:
    m = json.loads((root / "l2v.json").read_text())
    fn(m)
    (root / "l2v.json").write_text(json.dumps(m))


# ---------------------------------------------------------------------- the cases
class Battery:
    def __init__(self, work: Path):
        self.work = work
        self.rows: list[dict] = []

    def add(self, case: str, what: str, result: str, message: str, left: str = "n/a", seconds=None) -> None:
        row = {"case": case, "what": what, "result": result, "message": message, "leftovers": left,
               "seconds": None if seconds is None else round(seconds, 1)}
        print(json.dumps(row), flush=True)
        self.rows.append(row)

    def fresh(self, name: str) -> Path:
        d = self.work / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def setup(self) -> None:
        import l2v
        from tiny import make_backbone, make_tokenizer

        self.model = self.work / "model"
        if not (self.model / "config.json").is_file():
            make_backbone("llama", "sdpa", 0, max_position_embeddings=CONTEXT).save_pretrained(str(self.model))
            make_tokenizer().save_pretrained(str(self.model))
        self.art = self.work / "art"
        if not (self.art / "l2v.json").is_file():
            l2v.export_model(str(self.model), self.art, max_length=CONTEXT, doc_max_length=0, progress=False,
                             overwrite=True)

    def copy(self, name: str) -> Path:
        d = self.fresh(name)
        shutil.copytree(self.art, d / "art")
        return d / "art"

    def export_args(self, out, *extra):
        return cli("export", self.model, "--out", out, "--max-length", 64, *extra)

    # 1 ------------------------------------------------------------------
    def case_1(self):
        art = self.copy("c1")
        p = art / "model.onnx"
        data = bytearray(p.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 4096] = bytes(255 - b for b in data[mid:mid + 4096])
        p.write_bytes(bytes(data))
        r = run(cli("quantize", art, "--quant", "int8-dynamic", "--no-speed"))
        self.add("1", "4 KB inverted inside model.onnx, then l2v-quantize", f"exit {r.returncode}",
                 error_line(r.stderr), leftovers(art.parent, "art", art))
        import l2v

        self.add("1", "same, l2v.load(verify=True)", *python_case(lambda: l2v.load(art, verify=True)))

    # 2 ------------------------------------------------------------------
    def case_2(self):
        d = self.fresh("c2")
        out = d / "art"
        code, _ = killed_at(self.export_args(out), "exporting ONNX")
        self.add("2a", "SIGKILL during ONNX export", f"killed ({code})", "-", leftovers(d, "art"))
        code, err = killed_at(self.export_args(out), "validating the fp32 graph")
        self.add("2b", "SIGKILL during validation (after 2a)", f"killed ({code})", error_line(err), leftovers(d, "art"))
        t0 = time.perf_counter()
        r = run(self.export_args(out))
        self.add("2c", "the next export (after 2b)", f"exit {r.returncode}", error_line(r.stderr),
                 leftovers(d, "art", out), time.perf_counter() - t0)
        art = self.copy("c2q")
        code, _ = killed_at(cli("quantize", art, "--quant", "int8-smooth", "--no-speed"), "building int8-smooth")
        self.add("2d", "SIGKILL during quantize", f"killed ({code})", "-", leftovers(art.parent, "art", art))
        r = run(cli("quantize", art, "--quant", "int8-dynamic", "--no-speed"))
        self.add("2e", "the next quantize (after 2d)", f"exit {r.returncode}", error_line(r.stderr),
                 leftovers(art.parent, "art", art))
        d = self.fresh("c2t")
        p = subprocess.Popen(["timeout", "600", *self.export_args(d / "art")], stderr=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=ENV)
        until(p, "exporting ONNX")
        p.send_signal(signal.SIGALRM)  # what `timeout`'s own timer does when it expires
        _, err = p.communicate()
        self.add("2f", "`timeout` expires during ONNX export (SIGTERM)", f"exit {p.returncode}", error_line(err),
                 leftovers(d, "art"))

    # 3 ------------------------------------------------------------------
    def case_3(self):
        d = self.fresh("c3")
        a = subprocess.Popen(cli("export", self.model, "--out", d / "r", "--dim", 16, "--max-length", 64),
                             stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
        b = subprocess.Popen(cli("export", self.model, "--out", d / "r", "--dim", 32, "--max-length", 64),
                             stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)
        ea, eb = a.communicate()[1], b.communicate()[1]
        dim = json.loads((d / "r" / "l2v.json").read_text())["graph"]["dim"] if (d / "r" / "l2v.json").exists() else None
        loser = eb if a.returncode == 0 else ea
        self.add("3", "two exports to one --out at once (--dim 16 & --dim 32)",
                 f"exit {a.returncode} & {b.returncode}; artifact dim {dim}", error_line(loser), leftovers(d, "r"))

    # 4 ------------------------------------------------------------------
    def case_4(self):
        art = self.copy("c4")
        r = run(cli("quantize", art, "--quant", "int8-dynamic", "--quant", "int8-dynamic:name=int8_dynamic",
                    "--no-speed"))
        m = json.loads((art / "l2v.json").read_text())
        files = {n: v["files"][0]["path"] for n, v in m["variants"].items() if n.startswith("int8")}
        self.add("4", "variants int8-dynamic and int8_dynamic", f"exit {r.returncode}", f"files {files}",
                 leftovers(art.parent, "art", art))
        r = run(cli("quantize", art, "--quant", "int8-dynamic:name=INT8-dynamic", "--no-speed"))
        self.add("4", "then a name differing only in case", f"exit {r.returncode}", error_line(r.stderr))

    # 5 ------------------------------------------------------------------
    def case_5(self):
        d = self.fresh("c5")
        (d / "f").write_text("x")
        (d / "adapter").mkdir()
        for what, extra, out in [("bad --quant spec", ["--quant", "int8-smoth"], d / "o"),
                                 ("--min-recall 1.5", ["--quant", "w4", "--min-recall", "1.5"], d / "o"),
                                 ("--out under a file", [], d / "f" / "o"),
                                 ("adapter without adapter_config.json", ["--adapter", d / "adapter"], d / "o")]:
            t0 = time.perf_counter()
            r = run(cli("export", self.model, "--out", out, *extra))
            self.add("5", what, f"exit {r.returncode}", error_line(r.stderr), leftovers(d, "o"),
                     time.perf_counter() - t0)

    # 6 ------------------------------------------------------------------
    def case_6(self):
        d = self.fresh("c6")
        r = run(cli("export", self.model, "--out", d / "o", "--max-length", 1000000000))
        self.add("6", "--max-length 1000000000 (context 131,072)", f"exit {r.returncode}", error_line(r.stderr),
                 leftovers(d, "o"))
        import l2v

        enc = l2v.load(self.art)
        huge = ("The quick brown fox jumps over the lazy dog. " * 23000)[:1_000_000]
        self.add("6", "encode one 1 MB string (max_length 131,072, no document cut)",
                 *python_case(lambda: enc.encode(["short", huge])))
        t0 = time.perf_counter()
        self.add("6", "same, l2v.load(max_length=512)",
                 *python_case(lambda: l2v.load(self.art, max_length=512).encode([huge])),
                 seconds=time.perf_counter() - t0)

    # 7, 8 ---------------------------------------------------------------
    def case_7(self):
        import l2v

        def one(what, damage, **kw):
            art = self.copy("c7")
            damage(art)
            self.add("7", what + (f" ({kw})" if kw else ""), *python_case(lambda: l2v.load(art, **kw).encode(["x"])))

        def trunc(p):
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

        one("truncated model.onnx", lambda a: trunc(a / "model.onnx"))
        one("empty model.onnx", lambda a: (a / "model.onnx").write_bytes(b""))
        one("truncated model.onnx, no sizes recorded (schema 1)", lambda a: (trunc(a / "model.onnx"), edit(
            a, lambda m: [f.pop("size") for v in m["variants"].values() for f in v["files"]])))
        one("l2v.json = []", lambda a: (a / "l2v.json").write_text("[]"))
        one("l2v.json without 'graph'", lambda a: edit(a, lambda m: m.pop("graph")))
        one("l2v.json without variants.fp32.files", lambda a: edit(a, lambda m: m["variants"]["fp32"].pop("files")))
        one("l2v.json dim 32 (graph has 64)", lambda a: edit(a, lambda m: m["graph"].update(dim=32)))
        one("l2v.json dim 32 (graph has 64)", lambda a: edit(a, lambda m: m["graph"].update(dim=32)), backend="torch")
        one("tokenizer.json missing", lambda a: os.remove(a / "tokenizer.json"))
        one("tokenizer.json corrupt (same size)",
            lambda a: (a / "tokenizer.json").write_bytes(b"{" * (a / "tokenizer.json").stat().st_size))
        one("torch/config.json corrupt (same size)", lambda a: (a / "torch" / "config.json").write_bytes(
            b"{" * (a / "torch" / "config.json").stat().st_size), backend="torch")
        art = self.copy("c7")
        trunc(art / "model.onnx")
        r = run(cli("quantize", art, "--quant", "int8-dynamic", "--no-speed"))
        self.add("7", "truncated model.onnx, then l2v-quantize", f"exit {r.returncode}", error_line(r.stderr),
                 leftovers(art.parent, "art", art))
        one("manifest file '../../other/model.onnx'",
            lambda a: edit(a, lambda m: m["variants"]["fp32"]["files"][0].update(path="../../other/model.onnx")))
        self.rows[-1]["case"] = "8"

    # 9 ------------------------------------------------------------------
    def case_9(self):
        d = self.fresh("c9")
        ro = d / "ro"
        if mount_tmpfs(ro, "1m", ro=True):
            try:
                r = run(cli("export", self.model, "--out", ro / "art"))
                self.add("9", "--out on a read-only file system", f"exit {r.returncode}", error_line(r.stderr))
            finally:
                umount(ro)
        else:
            self.add("9", "--out on a read-only file system", "skipped", "cannot mount a tmpfs here")
        if mount_tmpfs(ro, "4m"):
            try:
                shutil.copytree(self.art, ro / "art")
                subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True, check=True)
                r = run(cli("quantize", ro / "art", "--quant", "int8-dynamic", "--no-speed"))
                self.add("9", "l2v-quantize on a read-only artifact", f"exit {r.returncode}", error_line(r.stderr))
            finally:
                umount(ro)
        (d / "file").write_text("x")
        r = run(cli("export", self.model, "--out", d / "file" / "art"))
        self.add("9", "--out under a file", f"exit {r.returncode}", error_line(r.stderr))
        full = d / "full"
        if mount_tmpfs(full, "900k"):
            try:
                r = run(self.export_args(full / "art"))
                self.add("9", "disk full during export (900 KB tmpfs)", f"exit {r.returncode}", error_line(r.stderr),
                         leftovers(full, "art"))
            finally:
                umount(full)
            need = sum(-(-p.stat().st_size // 4096) * 4096 for p in self.art.rglob("*") if p.is_file())
            if mount_tmpfs(full, f"{(need + 65536) // 1024}k"):
                try:
                    shutil.copytree(self.art, full / "art")
                    r = run(cli("quantize", full / "art", "--quant", "int8-dynamic", "--no-speed"))
                    self.add("9", "disk full during quantize", f"exit {r.returncode}", error_line(r.stderr),
                             leftovers(full, "art", full / "art"))
                finally:
                    umount(full)
        else:
            self.add("9", "disk full during export / quantize", "skipped", "cannot mount a tmpfs here")
        (d / "cachefile").write_text("x")
        r = subprocess.run(cli("export", "--demo", "--out", d / "demo"), capture_output=True, text=True, timeout=900,
                           env=dict(ENV, L2V_CACHE=str(d / "cachefile")))
        self.add("9", "L2V_CACHE is a file, --demo", f"exit {r.returncode}", error_line(r.stderr))
        import l2v

        for backend in ("onnx", "torch"):
            self.add("9", f'device="cuda", backend {backend}, CPU-only install',
                     *python_case(lambda: l2v.load(self.art, backend=backend, device="cuda")))

    # 10 -----------------------------------------------------------------
    def case_10(self):
        import l2v

        enc = l2v.load(self.art)
        for label, texts in [("encode(None)", None), ("encode(42)", 42), ("encode({'a': 'b'})", {"a": "b"}),
                             ("encode({'a', 'b'})", {"a", "b"})]:
            self.add("10", label, *python_case(lambda: enc.encode(texts)))
        self.add("10", "encode(..., normalize='no')", *python_case(lambda: enc.encode(["a"], normalize="no")))
        self.add("10", "encode(..., batch_size=True)", *python_case(lambda: enc.encode(["a"], batch_size=True)))
        self.add("10", 'export_model(..., adapters="dir")', *python_case(
            lambda: l2v.export_model(str(self.model), self.work / "c10", adapters="dir", progress=False)))
        d = self.fresh("c10")
        (d / "random.bin").write_bytes(bytes(range(256)) * 64)
        adapter = d / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text("{}")
        (adapter / "adapter_model.safetensors").write_bytes(b"")
        bad_model = d / "m"
        shutil.copytree(self.model, bad_model)
        (bad_model / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
        for what, argv in [("--opset 99", cli("export", self.model, "--out", d / "o", "--opset", 99)),
                           ("random bytes as --calib", cli("export", self.model, "--out", d / "o", "--quant",
                                                           "int8-smooth", "--calib", d / "random.bin")),
                           ("random bytes as --eval", cli("export", self.model, "--out", d / "o", "--quant",
                                                          "int8-smooth", "--eval", d / "random.bin")),
                           ("--min-recall without --quant", cli("export", self.model, "--out", d / "o",
                                                                "--min-recall", 0.9)),
                           ("the same --adapter twice", cli("export", self.model, "--out", d / "o", "--adapter",
                                                            adapter, "--adapter", adapter)),
                           ("corrupt config.json in MODEL", cli("export", bad_model, "--out", d / "o"))]:
            r = run(argv)
            self.add("10", what, f"exit {r.returncode}", error_line(r.stderr), leftovers(d, "o"))

    # 11 -----------------------------------------------------------------
    def case_11(self):
        r = run([sys.executable, "-c", "import l2v; l2v.load(%r, backend='torch').encode(['x'])" % str(self.art)])
        self.add("11", "l2v.load(backend='torch'): what it prints", f"exit {r.returncode}",
                 repr(r.stderr.strip()[:200]) if r.stderr.strip() else "nothing")
        from l2v.cli import bench, export, fetch, quantize

        empty = [f"{m.parser().prog} {a.option_strings or a.dest}" for m in (export, quantize, bench, fetch)
                 for a in m.parser()._actions if a.dest != "help" and not (a.help or "").strip()]
        self.add("11", "--help entries without text (all four CLIs)", str(len(empty)), ", ".join(empty) or "-")


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Run {meta['created']} ({meta['seconds']:.0f} s wall, load average {meta['load'][0]:.1f} at start), "
             "`python bench/reliability_battery.py`.", "",
             "| case | what | result | message | leftovers |", "|---|---|---|---|---|"]
    for r in rows:
        msg = r["message"].replace("|", "\\|")
        lines.append(f"| {r['case']} | {r['what'].replace('|', '/')} | {r['result']} | {msg} | {r['leftovers']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default=None, help="scratch directory (default: a temporary one, removed after)")
    p.add_argument("--only", default=None, help="comma list of case numbers (1..11)")
    p.add_argument("--out", default=str(RESULTS / "reliability"))
    args = p.parse_args(argv)
    t0, load = time.perf_counter(), os.getloadavg()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="l2v-battery-"))
    work.mkdir(parents=True, exist_ok=True)
    battery = Battery(work)
    battery.setup()
    cases = args.only.split(",") if args.only else [str(i) for i in range(1, 12)]
    for c in cases:
        fn = getattr(battery, f"case_{c}", None)
        if fn is not None:
            fn()
    meta = {"created": time.strftime("%Y-%m-%d %H:%M"), "seconds": time.perf_counter() - t0, "load": load,
            "python": sys.version.split()[0], "root": os.geteuid() == 0}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": battery.rows}, indent=2) + "\n")
    table = markdown(battery.rows, meta)
    out.with_suffix(".md").write_text("# Reliability battery\n\n" + table)
    if not args.only and DOC.is_file():
        doc = DOC.read_text()
        if BEGIN in doc and END in doc:
            DOC.write_text(doc[:doc.index(BEGIN) + len(BEGIN)] + "\n" + table + doc[doc.index(END):])
    print(table)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
