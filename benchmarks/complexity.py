"""Parameters and operations per time step of every preset model (models.md sections 4 and 5).

MACs and ACs per sample and time step, counted by :func:`snn_cuda.complexity.measure_cost` on one random input
whose event rate is ``--input-rate`` (each input pixel / feature is an event with that probability). ACs of He
et al.'s spiking nets scale with the spike rates measured in that forward; the trained rates that the experiments
measure are in their results tables (experiments/gesture.py).

    python benchmarks/complexity.py                  # table; writes complexity.{csv,md} under benchmarks/results/
    python benchmarks/complexity.py --json           # one JSON object keyed by model name, nothing written
    python benchmarks/complexity.py --models he_fc_snn_gesture iir_mlp_mnist --input-rate 0.05 --T 8
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from _common import RESULTS, output_folder, positive_int, write_csv

from snn_cuda.complexity import measure_cost
from snn_cuda.experiment import markdown_table
from snn_cuda.models import PRESETS, build_model

IIR_COEFFICIENTS = ("a1", "a2", "b")


def model_cost(name: str, *, input_rate: float, T: int, batch: int, seed: int) -> dict:
    # The weights set the spike rates, hence the ACs: seeded per model, so a count does not depend on the run or
    # on which other models it measures.
    torch.manual_seed(seed)
    model = build_model(name)
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, batch, *model.input_shape, generator=generator) < input_rate).float()
    cost = measure_cost(model, x).as_dict()
    iir = sum(p.numel() for key, p in model.named_parameters() if key.rsplit(".", 1)[-1] in IIR_COEFFICIENTS)
    return {"params": cost["params"], "iir_coefficients": iir, "weights": cost["params"] - iir,
            "macs_per_step": cost["macs"], "acs_per_step": cost["acs"], "other_ops_per_step": cost["other_ops"],
            "input_rates": cost["input_rates"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--input-rate", type=float, default=0.1, help="event probability of each input element")
    parser.add_argument("--T", type=positive_int, default=4, help="time steps of the measuring forward")
    parser.add_argument("--batch", type=positive_int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object and write nothing")
    parser.add_argument("--out", type=output_folder, default=RESULTS)
    args = parser.parse_args(argv)
    if not 0.0 <= args.input_rate <= 1.0:
        parser.error(f"--input-rate must lie in [0, 1], got {args.input_rate}")
    results = {name: model_cost(name, input_rate=args.input_rate, T=args.T, batch=args.batch, seed=args.seed)
               for name in args.models}  # fmt: skip
    if args.json:
        print(json.dumps(results))
        return results
    columns = ["model", "params", "weights", "iir_coefficients", "macs_per_step", "acs_per_step",
               "other_ops_per_step"]  # fmt: skip
    rows = [{"model": name, **{key: value for key, value in result.items() if key in columns}}
            for name, result in results.items()]  # fmt: skip
    # the CSV carries what the ACs were measured at, as the markdown's header does
    write_csv(args.out / "complexity.csv", [{**row, "input_rate": args.input_rate, "T": args.T} for row in rows])
    table = markdown_table(rows, tuple(columns))
    (args.out / "complexity.md").write_text(
        f"# Parameters and operations per sample and time step\n\nInput event rate {args.input_rate}, T {args.T}; "
        "ACs of He et al.'s SNNs from the spike rates of an untrained network on that input.\n\n" + table + "\n"
    )
    print(table)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
