"""The three PNGs: latency vs batch size per backend, throughput per precision, recall@10 vs size."""
from __future__ import annotations

from pathlib import Path

from l2v.bench.rows import select

FILES = {"latency": "latency_vs_batch.png", "throughput": "throughput_by_precision.png",
         "pareto": "recall_vs_size.png"}


def label(row: dict, with_model: bool = False) -> str:
    base = f"{row['backend']}/{row['precision']}"
    return f"{row['model']}: {base}" if with_model else base


def labeller(rows: list[dict]):
    """Label by backend/precision, prefixed by the model when the rows hold more than one model."""
    many = len({r.get("model") for r in rows if r.get("backend")}) > 1
    return lambda r: label(r, many)


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols + 1, 3.8), squeeze=False)
    return plt, fig, axes[0]


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _empty(plt, fig, ax, path: Path, what: str) -> Path:
    ax.text(0.5, 0.5, f"no {what} measured", ha="center", va="center")
    ax.set_axis_off()
    return _save(plt, fig, path)


def latency_vs_batch(rows: list[dict], path: Path) -> Path:
    data = select(rows, "latency_p50")
    label = labeller(rows)
    seqs = sorted({r["seq"] for r in data}) or [None]
    plt, fig, axes = _figure(len(seqs))
    if not data:
        return _empty(plt, fig, axes[0], path, "latency")
    batches = sorted({r["batch"] for r in data})
    for ax, seq in zip(axes, seqs):
        for i, name in enumerate(sorted({label(r) for r in data})):
            pts = sorted((r["batch"], r["value"]) for r in data if r["seq"] == seq and label(r) == name)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name, color=f"C{i}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlim(batches[0] / 1.5, batches[-1] * 1.5)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("p50 latency (ms)")
        ax.set_title(f"seq len {seq}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(plt, fig, path)


def throughput_by_precision(rows: list[dict], path: Path) -> Path:
    data = sorted(select(rows, "mix_throughput"), key=lambda r: (r["precision"], r["backend"], r["model"]))
    label = labeller(rows)
    plt, fig, axes = _figure(1)
    ax = axes[0]
    if not data:
        return _empty(plt, fig, ax, path, "throughput")
    precisions = sorted({r["precision"] for r in data})
    colours = {p: f"C{i}" for i, p in enumerate(precisions)}
    bars = ax.bar(range(len(data)), [r["value"] for r in data], color=[colours[r["precision"]] for r in data])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(range(len(data)), [label(r) for r in data], rotation=30, ha="right")
    ax.set_ylabel("sequences / s (real length mix)")
    ax.set_title("throughput per backend and precision")
    for p in precisions:
        ax.bar([], [], color=colours[p], label=p)
    ax.legend(fontsize=8, title="precision")
    return _save(plt, fig, path)


def recall_vs_size(rows: list[dict], path: Path) -> Path:
    label = labeller(rows)
    sizes = {label(r): r["value"] for r in select(rows, "model_size")}
    recall = {label(r): r["value"] for r in select(rows, "fidelity_recall_at_10")}
    names = sorted(n for n in recall if sizes.get(n) is not None and recall[n] is not None)
    plt, fig, axes = _figure(1)
    ax = axes[0]
    if not names:
        return _empty(plt, fig, ax, path, "recall / size")
    groups: list[list[str]] = []  # variants on (nearly) the same spot share one marker and one label
    for n in sorted(names, key=lambda n: (round(recall[n], 4), sizes[n])):
        g = groups[-1] if groups else None
        if g and round(recall[g[0]], 4) == round(recall[n], 4) and sizes[n] <= 1.02 * sizes[g[0]]:
            g.append(n)
        else:
            groups.append([n])
    for i, g in enumerate(groups):
        ax.scatter(sizes[g[0]], recall[g[0]], color=f"C{i}", s=40)
        ax.annotate(", ".join(g), (sizes[g[0]], recall[g[0]]), textcoords="offset points", xytext=(-5, 6),
                    fontsize=8, ha="right")
    ax.set_xlim(0, max(sizes[n] for n in names) * 1.25)
    ax.set_ylim(min(0.9, min(recall[n] for n in names) - 0.02), 1.02)
    ax.set_xlabel("model file size (MB)")
    ax.set_ylabel("neighbour recall@10 vs fp32 reference")
    ax.set_title("recall vs size (up and left is better)")
    ax.grid(True, alpha=0.3)
    return _save(plt, fig, path)


def write_plots(rows: list[dict], out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"latency": latency_vs_batch(rows, out_dir / FILES["latency"]),
            "throughput": throughput_by_precision(rows, out_dir / FILES["throughput"]),
            "pareto": recall_vs_size(rows, out_dir / FILES["pareto"])}
