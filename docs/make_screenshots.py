"""Screenshots of a run report and a comparison for the README (docs/report.png, comparison.png).

Trains two small runs on the built-in synthetic data (a U-Net and an attention
U-Net, a few epochs each, under a minute each on a 2-core CPU), rewrites the
first run's report with ``seglab report``, compares both with ``seglab compare``,
and photographs the pages with headless Chromium.

    python docs/make_screenshots.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SMALL = [
    "data.synthetic.n_images=24",
    "data.synthetic.height=64",
    "data.synthetic.width=64",
    "data.patch_size=64",
    "data.patches_per_epoch=24",
    "model.base_channels=8",
    "model.depth=3",
    "train.epochs=6",
    "train.batch_size=8",
    "train.progress=false",
    "eval.n_overlays=2",
]
MODELS = ("unet", "attention_unet")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def seglab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "seglab", *args], check=True)


def screenshot(page: Path, png: Path, work: Path, size: str = "1000,1400") -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}",
         f"--window-size={size}", f"--screenshot={png}", page.resolve().as_uri()],
        check=True,
        capture_output=True,
    )  # fmt: skip
    print(f"{png}: {png.stat().st_size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="seglab-shots-"))
    runs = work / "runs"
    for model in MODELS:
        sets = [x for o in [*SMALL, f"model.name={model}"] for x in ("--set", o)]
        seglab("run", "--runs-dir", str(runs / model), *sets)
    folders = [next((runs / m).iterdir()) for m in MODELS]
    seglab("report", str(folders[0]))
    comparison = work / "comparison.html"
    seglab("compare", *map(str, folders), "--out", str(comparison))
    screenshot(folders[0] / "report.html", DOCS / "report.png", work)
    screenshot(comparison, DOCS / "comparison.png", work, "1100,1400")
    if args.keep is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
