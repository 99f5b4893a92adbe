"""The same adherence heatmap and HR curve as coachd's charts, drawn with matplotlib
from the data coachd exported (argv[1], JSON), for the side-by-side in benches/charts.rs.
Prints one line per (chart, format): `name format median_ms`."""
import io
import json
import statistics
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

data = json.load(open(sys.argv[1]))
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
STATES = ["done", "partial", "missed", "excused", "pending", "no_data"]
COLORS = ["#009E73", "#E69F00", "#D55E00", "#56B4E9", "#FFFFFF", "#EEEEEE"]


def heatmap(fmt):
    rows = data["adherence"]["rows"]
    days = data["adherence"]["days"]
    grid = [[STATES.index(c) if c else float("nan") for c in r["cells"]] for r in rows]
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.45 * len(rows)), dpi=100)
    ax.imshow(grid, cmap=ListedColormap(COLORS), vmin=0, vmax=len(STATES) - 1, aspect="auto")
    ax.set_yticks(range(len(rows)), [r["label"] for r in rows])
    ticks = [i for i, d in enumerate(days) if d.endswith("-01")]
    ax.set_xticks(ticks, [days[i] for i in ticks])
    ax.set_title(data["adherence"]["title"])
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf


def session(fmt):
    s = data["session"]
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=100)
    mx = s["hr_max"]
    for z in range(1, 6):
        ax.axhspan(mx * (0.4 + 0.1 * z), mx * (0.5 + 0.1 * z), alpha=0.2, color=f"C{z}")
    ax.plot([p[0] for p in s["samples"]], [p[1] for p in s["samples"]], color="#D55E00", lw=2)
    ax.set_xlabel("minutes")
    ax.set_ylabel("heart rate, bpm")
    ax.set_title(s["title"])
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf


for name, fn in [("adherence", heatmap), ("session", session)]:
    for fmt in ["svg", "png"]:
        fn(fmt)  # warm-up (font cache)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn(fmt)
            times.append((time.perf_counter() - t) * 1000)
        print(name, fmt, f"{statistics.median(times):.2f}", flush=True)
