"""He et al.'s temporal-resolution study (models.md section 6, question 2): frame the events with each frame width
dt of a sweep, train every model at every dt, and test each trained model at every dt (generalisation across
resolutions: a model trained at one dt meets test samples framed at another).

    python experiments/temporal_resolution.py                    # synthetic DVS Gesture, reduced settings
    python experiments/temporal_resolution.py --dataset nmnist   # synthetic N-MNIST
    python experiments/temporal_resolution.py --data-root DVSGesture/ --config \\
        experiments/configs/temporal_resolution_he2020.yaml --device cuda
    python experiments/temporal_resolution.py --smoke            # a run of seconds
    python experiments/temporal_resolution.py --test results/temporal_resolution/snn_lif_dt75/best.pt

The sweep (the dataset's ``sweep`` section of the config) keeps either the number of frames T (``fixed:
frames``, He et al.'s choice: the covered span T x dt follows dt) or the covered span (``fixed: span``: T =
span / dt follows). Summed event counts grow with dt; with ``count_reference_dt_ms`` set, frames are multiplied by
reference / dt, so every dt gives events per reference frame width and a model tested at another dt sees inputs of
the scale it was trained on (only the temporal content changes); null keeps raw counts.

Writes into --out (default results/temporal_resolution): results.csv / .md (each model trained and tested at each
dt, with the cost columns of the gesture comparison), generalisation.csv (one row per model, train dt and test dt)
and generalisation.md (a train-dt x test-dt accuracy matrix per model), accuracy_vs_dt.png, generalisation.png
(one panel per model, accuracy against test dt, one line per train dt), config.yaml, and per model and train dt
``<model>_dt<dt>/`` with metrics.csv, last.pt and best.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

from snn_cuda.data.nmnist import SENSOR_SIZE as NMNIST_SENSOR_SIZE
from snn_cuda.experiment import (
    RESULT_COLUMNS,
    ConfigError,
    check_models,
    driver_parser,
    evaluate_checkpoint,
    load_config,
    markdown_table,
    refuse_torchrun,
    run_from_command_line,
    run_metadata,
    start_run,
    train_and_measure,
    training_note,
    write_table,
)
from snn_cuda.training import Trainer, model_from_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling driver, also when loaded from elsewhere
from gesture import SENSOR as GESTURE_SENSOR  # noqa: E402
from gesture import gesture_datasets  # noqa: E402
from nmnist import nmnist_datasets  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "temporal_resolution_quick.yaml"
SWEEP_COLUMNS = ("model", "dt_ms", "frames", "span_ms", *RESULT_COLUMNS[1:])
GENERALISATION_COLUMNS = ("model", "train_dt_ms", "test_dt_ms", "train_frames", "test_frames", "test_accuracy")


SOURCES = {"gesture": (gesture_datasets, GESTURE_SENSOR), "nmnist": (nmnist_datasets, NMNIST_SENSOR_SIZE[0])}


def framing_at(data: dict, dt_ms: float) -> dict:
    """The framing options of frame width ``dt_ms``: ``data["framing"]`` (mode, downsample) with T fixed or
    following the fixed span, as ``data["sweep"]`` says."""
    sweep = data["sweep"]
    if sweep["fixed"] == "frames":
        frames = sweep["frames"]
    elif sweep["fixed"] == "span":
        frames = round(sweep["span_ms"] / dt_ms)
        if abs(frames * dt_ms - sweep["span_ms"]) > 1e-9 * sweep["span_ms"]:
            raise ValueError(f"sweep: dt {dt_ms} ms does not divide the fixed span of {sweep['span_ms']} ms")
    else:
        raise ValueError(f"sweep 'fixed' must be 'frames' or 'span', got {sweep['fixed']!r}")
    return {**data["framing"], "frames": frames, "dt_ms": dt_ms}


def data_at(data: dict, dt_ms: float) -> dict:
    """The data settings of one resolution (stored in checkpoints, so ``--test`` frames a checkpoint's data the
    way it was trained): the framing at ``dt_ms`` and the count scale reference / dt (1 for raw counts)."""
    reference = data["sweep"].get("count_reference_dt_ms")
    if reference is not None and data["framing"].get("mode", "or") != "sum":
        # "or" marks events and "sum_max" divides each frame by its maximum: neither holds counts to scale
        raise ValueError("count_reference_dt_ms scales event counts: use framing mode 'sum', or null")
    settings = {key: value for key, value in data.items() if key != "sweep"}
    return {
        **settings,
        "framing": framing_at(data, dt_ms),
        "count_scale": 1.0 if reference is None else reference / dt_ms,
    }


def framed_sets(data: dict, data_root: str | None, progress: bool) -> dict:
    """The train / dev / test sets of ``data`` (settings of :func:`data_at`), counts scaled by its count scale."""
    make_sets, _ = SOURCES[data["dataset"]]
    sets = make_sets(data, data_root, progress)
    if data["count_scale"] != 1.0:
        for dataset in sets.values():
            dataset.tensors[0].mul_(data["count_scale"])
    return sets


def input_shape(data: dict) -> list[int]:
    side = SOURCES[data["dataset"]][1] // data["framing"].get("downsample", 1)
    return [2, side, side]


def with_classes(spec: str, classes: int) -> str:
    """``spec`` with its output layer sized to the dataset's ``classes`` (one model section serves every
    dataset)."""
    return f"{spec.rsplit('-', 1)[0]}-FC{classes}" if "-" in spec else f"FC{classes}"


def run_name(model: str, dt_ms: float) -> str:
    return f"{model}_dt{dt_ms:g}"


def generalisation_markdown(rows: list[dict], dts: list[float]) -> str:
    """One train-dt x test-dt accuracy matrix per model."""
    sections = []
    for model in dict.fromkeys(row["model"] for row in rows):
        columns = ("train dt (ms)", *(f"test {dt:g} ms" for dt in dts))
        matrix = [
            {"train dt (ms)": f"{train:g}", **{f"test {row['test_dt_ms']:g} ms": row["test_accuracy"] for row in rows
                                               if row["model"] == model and row["train_dt_ms"] == train}}
            for train in dts
        ]  # fmt: skip
        sections.append(f"## {model}\n\n{markdown_table(matrix, columns)}\n")
    return "\n".join(sections)


def plot_sweep(sweep_rows: list[dict], rows: list[dict], out_dir: Path) -> None:
    """``accuracy_vs_dt.png`` (trained and tested at the same dt, one line per model) and ``generalisation.png``
    (one panel per model: accuracy against test dt, one line per train dt, its own dt marked)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for model in dict.fromkeys(row["model"] for row in sweep_rows):
        model_rows = [row for row in sweep_rows if row["model"] == model]
        axis.plot([row["dt_ms"] for row in model_rows], [row["test_accuracy"] for row in model_rows], marker="o",
                  label=model)  # fmt: skip
    axis.set(xlabel="frame width dt (ms)", ylabel="test accuracy", title="Trained and tested at the same dt",
             ylim=(0, 1.05))  # fmt: skip
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out_dir / "accuracy_vs_dt.png", dpi=120)
    plt.close(figure)

    models = list(dict.fromkeys(row["model"] for row in rows))
    figure, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 4), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for train in dict.fromkeys(row["train_dt_ms"] for row in rows if row["model"] == model):
            curve = [row for row in rows if row["model"] == model and row["train_dt_ms"] == train]
            line = axis.plot([row["test_dt_ms"] for row in curve], [row["test_accuracy"] for row in curve],
                             marker="o", label=f"trained at {train:g} ms")[0]  # fmt: skip
            own = next(row for row in curve if row["test_dt_ms"] == train)
            axis.scatter([train], [own["test_accuracy"]], s=120, facecolors="none", edgecolors=line.get_color())
        axis.set(xlabel="test frame width dt (ms)", ylabel="test accuracy", title=model, ylim=(0, 1.05))
        axis.legend(fontsize=7)
    figure.suptitle("Generalisation across resolutions (circle: the training dt)")
    figure.tight_layout()
    figure.savefig(out_dir / "generalisation.png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> tuple[list[dict], list[dict]] | dict:
    parser = driver_parser(__doc__, DEFAULT_CONFIG, name="temporal_resolution",
                           data_help="real data folder of --dataset (default: its synthetic set)")  # fmt: skip
    parser.add_argument("--dataset", choices=sorted(SOURCES), default=None, help="default: the config's dataset")
    args = parser.parse_args(argv)
    refuse_torchrun("temporal_resolution.py")
    if args.test is not None:
        return evaluate_checkpoint(args.test, args, framed_sets, driver="temporal_resolution")
    config = load_config(args.config, smoke=args.smoke, sections=("dataset", "datasets", "training", "models"))
    dataset = args.dataset or config["dataset"]
    data = {**config["datasets"][dataset], "dataset": dataset}
    dts = data["sweep"]["dt_ms"]
    widths = dts if isinstance(dts, list) and dts else [None]
    positive = all(isinstance(dt, int | float) and not isinstance(dt, bool) and dt > 0 for dt in widths)
    if not positive or len(set(widths)) != len(widths):
        raise ConfigError(f"{args.config}: sweep dt_ms must be a list of distinct positive frame widths (ms), "
                          f"got {dts!r}")  # fmt: skip
    training, names, out, record_config = start_run({**config, "dataset": dataset}, args)
    source = args.data_root or f"the embedded synthetic {dataset} set"
    print(
        f"{dataset} from {source}; frame widths {dts} ms, {data['sweep']['fixed']} fixed; {training.epochs} "
        f"epochs, batch {training.batch_size}, lr {training.lr}, loss {training.loss}, device {training.device}"
    )
    resolutions = {dt: data_at(data, dt) for dt in dts}
    model_configs = {}
    for name in names:
        model_configs[name] = dict(config["models"][name], input_shape=input_shape(resolutions[dts[0]]))
        model_configs[name]["spec"] = with_classes(model_configs[name]["spec"], data["classes"])
    metadata = {dt: run_metadata("temporal_resolution", resolutions[dt], args) for dt in dts}
    check_models([(run_name(name, dt), model_configs[name], metadata[dt]) for name in names for dt in dts],
                 training, args, out)  # fmt: skip
    sets = {dt: framed_sets(resolutions[dt], args.data_root, not args.quiet) for dt in dts}
    sweep_rows, rows = [], []
    for name in names:
        model_config = model_configs[name]
        for train_dt in dts:
            run = run_name(name, train_dt)
            frames = resolutions[train_dt]["framing"]["frames"]
            row, _ = train_and_measure(run, model_config, training, sets[train_dt], out, resume=args.resume,
                                       backend=args.backend, metadata=metadata[train_dt],
                                       on_start=record_config)  # fmt: skip
            sweep_rows.append(
                {**row, "model": name, "dt_ms": train_dt, "frames": frames, "span_ms": frames * train_dt}
            )
            model = model_from_checkpoint(out / run / "best.pt", backend=args.backend)
            evaluator = Trainer(model, training, out / run, name=run)
            for test_dt in dts:
                result = evaluator.evaluate(sets[test_dt]["test"], desc=f"test at {test_dt:g} ms")
                rows.append({"model": name, "train_dt_ms": train_dt, "test_dt_ms": test_dt, "train_frames": frames,
                             "test_frames": resolutions[test_dt]["framing"]["frames"],
                             "test_accuracy": result["accuracy"]})  # fmt: skip
            print(f"{run}: test accuracy at " + ", ".join(f"{r['test_dt_ms']:g} ms {r['test_accuracy']:.3f}"
                                                         for r in rows[-len(dts):]))  # fmt: skip
    reference = data["sweep"].get("count_reference_dt_ms")
    notes = [
        f"data: {source}; framing {data['framing']}, frame widths {dts} ms with the "
        f"{data['sweep']['fixed']} fixed; " + (f"counts scaled to events per {reference:g} ms" if reference
                                                else "raw counts (they grow with dt)"),
        f"train {len(sets[dts[0]]['train'])}, dev {len(sets[dts[0]]['dev'])}, test {len(sets[dts[0]]['test'])} "
        f"samples; chance accuracy {1 / data['classes']:.3f}",
        training_note(training, args),
    ]  # fmt: skip
    title = f"{dataset}: accuracy and cost per frame width (trained and tested at the same dt)"
    write_table(sweep_rows, SWEEP_COLUMNS, out, notes=notes, title=title)
    title = f"{dataset}: test accuracy, trained at one frame width, tested at another"
    matrices = generalisation_markdown(rows, dts)
    write_table(rows, GENERALISATION_COLUMNS, out, name="generalisation", body=matrices, notes=notes, title=title)
    plot_sweep(sweep_rows, rows, out)
    print(matrices)
    print(f"written: {out / 'results.csv'}, {out / 'results.md'}, {out / 'generalisation.csv'}, "
          f"{out / 'generalisation.md'}, {out / 'accuracy_vs_dt.png'}, {out / 'generalisation.png'}")  # fmt: skip
    return sweep_rows, rows


if __name__ == "__main__":
    run_from_command_line(main)
