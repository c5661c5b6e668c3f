"""Writing an evaluation (evaluation.json + a Markdown report with its plots) and comparing two.

An evaluation never replaces an earlier one silently: the first is `evaluation.json` /
`evaluation.md`, later ones `evaluation-2.json`, `evaluation-3.json` ... (with their plots suffixed
the same way), unless `overwrite` is asked for. Every file is written atomically.
"""
from __future__ import annotations

import calendar
import re
import time
from pathlib import Path

from . import runs
from .errors import VaekitError

NAME = "evaluation"
_NUMBERED = re.compile(rf"^{NAME}(?:-(\d+))?\.json$")


def evaluation_paths(folder: Path, overwrite: bool = False) -> tuple[Path, Path, str]:
    """(json path, markdown path, suffix) for a new evaluation in `folder`."""
    taken = [int(m.group(1) or 1) for p in folder.glob(f"{NAME}*.json") if (m := _NUMBERED.match(p.name))]
    if overwrite or not taken:
        suffix = ""
    else:
        suffix = f"-{max(taken) + 1}"
    return folder / f"{NAME}{suffix}.json", folder / f"{NAME}{suffix}.md", suffix


def output_folder(run, out=None, create: bool = True) -> Path:
    """The folder an evaluation goes to, or a clear error; with `create`, made if missing (with plots/).

    create=False only checks that it can be made and written, so that an evaluation that fails
    before writing leaves no empty folders behind.
    """
    folder = Path(out) if out is not None else run.path
    if folder.exists() and not folder.is_dir():
        raise VaekitError(f"{folder} is a file; --out takes a folder")
    if not create:
        runs.check_writable(next(p for p in (folder, *folder.parents) if p.exists()))
        return folder
    try:
        (folder / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaekitError(f"cannot write to {folder}: {e.strerror or e}") from None
    return folder


def write_evaluation(result: dict, run, bounds: dict, labels, out=None, overwrite: bool = False, echo=print) -> None:
    """evaluation.json, evaluation.md and plots/ into `out` (default: the run directory)."""
    from . import visual

    target = Path(out) if out is not None else run.path
    made = [p for p in (target / "plots", target, *target.parents) if not p.exists()]  # deepest first
    folder = output_folder(run, out)
    json_path, md_path, suffix = evaluation_paths(folder, overwrite)
    plots = {"kl_per_dim": f"plots/kl_per_dim{suffix}.png"}
    try:
        active = [v > 0.01 for v in result["posterior_mean_variance"]]
        visual.kl_per_dimension(result["kl_per_dim"], folder / plots["kl_per_dim"], active)
        if run.modality.plots_latent_means and run.model.latent_dim == 2:
            plots["latent_means"] = f"plots/latent_means{suffix}.png"
            visual.latent_scatter(bounds["mean"].numpy(), labels, folder / plots["latent_means"])
        result["plots"] = plots
        runs.write_json(json_path, result)
        runs.atomic_write(md_path, markdown(result).encode())
    except BaseException:
        _remove_made([folder / p for p in plots.values()] + [json_path, md_path], made)
        raise
    result["files"] = {"json": str(json_path), "markdown": str(md_path)}
    echo(f"wrote {json_path} and {md_path}")


def _remove_made(files: list[Path], made: list[Path]) -> None:
    """After a failed write: the folders this evaluation made, with what it wrote into them.

    Only files inside a folder made by this call go (nothing that existed before), and a folder only
    when that leaves it empty.
    """
    for path in files:
        if any(path.is_relative_to(folder) for folder in made):
            path.unlink(missing_ok=True)
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty (or already gone): keep it


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def _cell(text) -> str:
    return str(text).replace("|", "\\|")  # a literal bar would end a Markdown table cell


def markdown(result: dict) -> str:
    """A readable report: what was evaluated, each number with its definition, the plots."""
    s = result["settings"]
    lines = [f"# Evaluation of `{result['run']}`", "",
             f"{result['model']} ({result['kind']}, latent dimension {result['latent_dim']}), evaluated on "
             f"`{s['data']}` ({s['examples']} examples) on {result['date']} with vaekit {result['vaekit_version']}.",
             "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {key} | {_cell(_fmt(value))} |" for key, value in s.items()]
    lines += ["", "| metric | value | unit | definition |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {_fmt(m['value'])} | {m['unit']} | {_cell(m['definition'])} |"
              for name, m in result["metrics"].items()]
    kl = result["kl_per_dim"]
    lines += ["", "KL per latent dimension (nats per example): " + ", ".join(f"{v:.3f}" for v in kl), ""]
    lines += [f"![{name}]({path})" for name, path in result.get("plots", {}).items()]
    return "\n".join(lines) + "\n"


# ---- compare ------------------------------------------------------------------------------------
def read_evaluation(path: str | Path) -> dict:
    """An evaluation from its JSON file, or the newest evaluation in a run directory."""
    path = Path(path)
    if path.is_dir():
        found = [p for p in path.glob(f"{NAME}*.json") if _NUMBERED.match(p.name)]
        if not found:
            raise VaekitError(f"{path} has no evaluation yet; run: vaekit evaluate {path} --data ...")
        path = max(found, key=_written_at)
        _warn_if_stale(path)
    result = runs.read_json(path)
    if not isinstance(result, dict) or result.get("format") != "vaekit-evaluation":
        raise VaekitError(f"{path} is not a vaekit evaluation (no 'vaekit-evaluation' format tag)")
    if not isinstance(result.get("metrics"), dict) or not isinstance(result.get("settings"), dict):
        raise VaekitError(f"{path} is a damaged evaluation (no metrics or settings)")
    result["source"] = str(path)
    return result


def _warn_if_stale(path: Path) -> None:
    """The newest evaluation of a run that was trained further since describes other weights: say so."""
    import warnings

    from . import stamps

    stamp = stamps.read(path)
    if (path.parent / runs.WEIGHTS).exists() and not stamps.matches(stamp, path.parent):
        when = f"epoch {stamp.get('epoch')}" if stamp else "weights before stamps were recorded"
        warnings.warn(f"{path} evaluated earlier weights ({when}) than {path.parent} holds now; evaluate it again "
                      f"for numbers of the current weights", stacklevel=2)


def _written_at(path: Path) -> tuple:
    """When an evaluation was made: the date it records (else its file time), then file time, then number.

    Not the number alone: `evaluate --overwrite` rewrites evaluation.json after evaluation-2.json. The
    recorded date comes first because copying a folder changes file times; it counts whole seconds,
    so file time breaks its ties.
    """
    mtime = path.stat().st_mtime_ns
    try:
        date = runs.read_json(path).get("date")
        recorded = calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%SZ")) * 10**9
    except (VaekitError, AttributeError, TypeError, ValueError):  # unreadable, or no date: its file time
        recorded = mtime
    return recorded, mtime, int(_NUMBERED.match(path.name).group(1) or 1)


def compare(a: str | Path, b: str | Path) -> str:
    """Markdown table of two evaluations side by side, with B - A for every shared number."""
    ea, eb = read_evaluation(a), read_evaluation(b)
    lines = [f"A: `{ea['source']}` ({ea.get('model')}, {ea['settings'].get('data')})",
             f"B: `{eb['source']}` ({eb.get('model')}, {eb['settings'].get('data')})", "",
             "| metric | A | B | B - A |", "| --- | --- | --- | --- |"]
    names = list(ea["metrics"]) + [n for n in eb["metrics"] if n not in ea["metrics"]]
    for name in names:
        va, vb = (e["metrics"].get(name, {}).get("value") for e in (ea, eb))
        diff = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        lines.append(f"| {name} | {_fmt(va)} | {_fmt(vb)} | {_fmt(diff)} |")
    differing = [k for k in ("data", "examples", "k", "seed", "limit", "binarized", "max_len")
                 if ea["settings"].get(k) != eb["settings"].get(k)]
    if differing:
        lines += ["", "Settings differ, so not every number is comparable:", ""]
        lines += [f"- {k}: A {_fmt(ea['settings'].get(k))}, B {_fmt(eb['settings'].get(k))}" for k in differing]
    return "\n".join(lines) + "\n"
