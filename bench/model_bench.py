"""The customer-base model, measured: the published CDNOW fits reproduced from the orders,
and the time to fit 100k customers (`make bench-model`, or run by hand).

Prints the CDNOW table (ours beside the published figures) and the seconds each fit takes on
customers simulated from known parameters, with the parameters found beside the truth.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stream.model import bgnbd, gamma_gamma, simulate  # noqa: E402
from tests.helpers import cdnow_events  # noqa: E402

PUBLISHED = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4},
    "gamma_gamma": {"p": 6.25, "q": 3.74, "v": 15.44},
}


def cdnow() -> None:
    with tempfile.TemporaryDirectory() as directory:
        events = cdnow_events(Path(directory) / "cdnow.jsonl")
        model = Path(directory) / "model.json"
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stream",
                "model",
                "fit",
                str(events),
                "--calibration-end",
                "1997-09-30",
                "--time-unit",
                "week",
                "-o",
                str(model),
            ],
            check=True,
            cwd=ROOT,
        )
        seconds = time.monotonic() - started
        fit = orjson.loads(model.read_bytes())
    print(
        f"CDNOW sample, 39-week calibration: {fit['customers']:,} customers, "
        f"{fit['repeat_customers']:,} repeat; `lifecycle model fit` {seconds:.1f} s (replay included)"
    )
    print("| model | parameter | published | ours | standard error |")
    print("| --- | --- | --- | --- | --- |")
    for name in ("bgnbd", "mbgnbd", "gamma_gamma"):
        for key, value in fit[name].items():
            if key == "standard_errors":
                continue
            published = PUBLISHED.get(name, {}).get(key)
            error = fit[name]["standard_errors"].get(key)
            print(
                f"| {name} | {key} | {'' if published is None else published} | {value:.4f} | "
                f"{'' if error is None else f'{error:.4f}'} |"
            )


def speed(customers: int) -> None:
    observed_for = list(np.random.default_rng(1).uniform(1, 104, customers))
    spend = gamma_gamma.GammaGamma(4.0, 3.5, 20.0)
    for modified in (False, True):
        truth = bgnbd.BgNbd(0.8, 6.0, 0.6, 2.5, modified=modified)
        drawn = simulate.customers(truth, observed_for, seed=7, spend=spend if modified else None)
        started = time.monotonic()
        found = bgnbd.fit(*drawn.summary(), modified=modified)
        seconds = time.monotonic() - started
        name = "MBG/NBD" if modified else "BG/NBD"
        shown = ", ".join(
            f"{k} {v:.3f} (truth {truth.parameters()[k]})" for k, v in found.model.parameters().items()
        )
        print(f"{name} fit of {customers:,} customers: {seconds:.1f} s; {shown}")
    x, mean = [], []
    for values in drawn.values or []:
        if len(values) > 1:
            x.append(len(values) - 1)
            mean.append(float(np.mean(values[1:])))
    started = time.monotonic()
    found_spend = gamma_gamma.fit(x, mean)
    seconds = time.monotonic() - started
    shown = ", ".join(
        f"{k} {v:.3f} (truth {spend.parameters()[k]})" for k, v in found_spend.model.parameters().items()
    )
    print(f"Gamma-Gamma fit of {len(x):,} repeat customers: {seconds:.1f} s; {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    cdnow()
    speed(args.customers)


if __name__ == "__main__":
    main()
