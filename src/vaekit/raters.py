"""Human judgement of generated sentences: a blind rating sheet out, the raters' scores back in.

`export_sheet` writes into a new folder
    sheet.csv   one row per (input, output): item, input_id, input, output, and an empty column per
                criterion (fluency, meaning, novelty; whole numbers 1-5) for the rater to fill in;
    sheet.html  the same sheet as one self-contained page (inline CSS and JavaScript, no external
                assets) with a score menu per cell and a button that saves the filled ratings as CSV;
    key.json    which run produced each item. Keep it from the raters: the outputs of one input are
                shuffled and carry no run label, so two runs can be compared blind.
`summarise` reads filled sheets back with the key: mean, standard deviation and count per run and
criterion, and for two runs a paired comparison over the inputs both rated (mean difference,
wins/ties, Wilcoxon signed-rank test).
"""
from __future__ import annotations

import csv
import hashlib
import html
import io
import json
from pathlib import Path

import numpy as np

from . import runs
from .errors import VaekitError

KEY, SHEET_CSV, SHEET_HTML = "key.json", "sheet.csv", "sheet.html"
KEY_FORMAT = "vaekit-raters-key"
CRITERIA = {
    "fluency": "Is the output a well-formed, natural sentence? (1 = word salad, 5 = perfectly fluent)",
    "meaning": "Does the output keep the meaning of the input? (1 = unrelated, 5 = same meaning)",
    "novelty": "Does the output say it differently from the input? (1 = a copy, 5 = thoroughly reworded)",
}
SCALE = (1, 5)
FIXED_COLUMNS = ["item", "input_id", "input", "output"]


# ---- export -------------------------------------------------------------------------------------
def export_sheet(inputs: list[str], outputs: dict[str, list[list[str]]], out: str | Path, seed: int = 0,
                 settings: dict | None = None) -> dict[str, Path]:
    """Write sheet.csv, sheet.html and key.json into the new (or empty) folder `out`.

    outputs maps a run label (e.g. its path) to one list of outputs per input; with two labels the
    sheet mixes them for a blind comparison. `settings` (decoding options, seeds) go into the key.
    Returns the three paths.
    """
    _check_outputs(inputs, outputs)
    out = _new_folder(out)
    rng = np.random.default_rng(seed)
    labels = list(outputs)
    rows, key_items = [], {}
    for i, sentence in enumerate(inputs):
        pool = [(label, text) for label in labels for text in outputs[label][i]]
        for j, (label, text) in enumerate(pool[p] for p in rng.permutation(len(pool))):  # shuffled: blind
            item = f"{i + 1}-{j + 1}"
            rows.append({"item": item, "input_id": i + 1, "input": sentence, "output": text})
            key_items[item] = label
    key = {"format": KEY_FORMAT, "format_version": 1, "runs": labels, "items": key_items,
           "criteria": list(CRITERIA), "scale": list(SCALE), "seed": seed, "settings": settings or {}}
    paths = {"csv": out / SHEET_CSV, "html": out / SHEET_HTML, "key": out / KEY}
    runs.write_json(paths["key"], key)  # first: a sheet never exists without its key
    runs.atomic_write(paths["csv"], _csv_bytes(rows))
    runs.atomic_write(paths["html"], _html_sheet(rows).encode("utf-8"))
    return paths


def _check_outputs(inputs, outputs) -> None:
    if not inputs:
        raise VaekitError("no input sentences to rate")
    if not 1 <= len(outputs) <= 2:
        raise VaekitError(f"a rating sheet takes the outputs of one or two runs, got {len(outputs)}")
    for label, groups in outputs.items():
        if len(groups) != len(inputs) or any(not g for g in groups):
            raise VaekitError(f"run {label}: give a non-empty list of outputs for each of the {len(inputs)} inputs")


def _new_folder(out) -> Path:
    """The output folder, created; refuses one that already holds files (never overwrite a sheet or key)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VaekitError(f"{out} exists and is not an empty folder; choose a new --out")
    if not out.parent.is_dir():
        raise VaekitError(f"folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    return out


def _csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIXED_COLUMNS + list(CRITERIA), lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, **dict.fromkeys(CRITERIA, "")} for r in rows)
    return buffer.getvalue().encode("utf-8")


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top}
tr.first td{border-top:3px solid #555}.input{background:#f4f4f4;font-style:italic}
select{font-size:1em}dt{font-weight:bold}button{font-size:1.1em;margin:1em 0}"""

# Builds the filled CSV (same columns as sheet.csv) from the menus and offers it as a download.
_SCRIPT = """function saveRatings(){const crit=JSON.parse(document.body.dataset.criteria);
const q=s=>'"'+String(s).replace(/"/g,'""')+'"';let lines=[['item','input_id','input','output'].concat(crit).join(',')];
let missing=0;document.querySelectorAll('tr[data-item]').forEach(tr=>{const d=tr.dataset;
const scores=crit.map(c=>{const v=tr.querySelector('select[name="'+c+'"]').value;if(!v)missing++;return v;});
lines.push([d.item,d.input,q(d.text),q(d.output)].concat(scores).join(','));});
if(missing&&!confirm(missing+' scores are still empty. Save anyway?'))return;
const a=document.createElement('a');a.href=URL.createObjectURL(new Blob([lines.join('\\n')+'\\n'],{type:'text/csv'}));
a.download='ratings.csv';a.click();}"""


def _html_sheet(rows: list[dict]) -> str:
    e = lambda s: html.escape(str(s), quote=True)
    options = "<option></option>" + "".join(f"<option>{v}</option>" for v in range(SCALE[0], SCALE[1] + 1))
    body, last_input = [], None
    for r in rows:
        first = r["input_id"] != last_input
        last_input = r["input_id"]
        menus = "".join(f'<td><select name="{c}" aria-label="{c}">{options}</select></td>' for c in CRITERIA)
        input_cell = f'<td class="input">{e(r["input"])}</td>' if first else "<td></td>"
        body.append(f'<tr class="{"first" if first else ""}" data-item="{e(r["item"])}" data-input="{r["input_id"]}" '
                    f'data-text="{e(r["input"])}" data-output="{e(r["output"])}"><td>{e(r["item"])}</td>{input_cell}'
                    f'<td>{e(r["output"])}</td>{menus}</tr>')
    guide = "".join(f"<dt>{e(c)}</dt><dd>{e(text)}</dd>" for c, text in CRITERIA.items())
    header = "".join(f"<th>{e(c)}</th>" for c in CRITERIA)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Rate the sentences</title>'
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head>"
            f"<body data-criteria='{e(json.dumps(list(CRITERIA)))}'><h1>Rate the sentences</h1>"
            f"<p>Each input sentence (grey) is followed by sentences generated from it, in random order. "
            f"Score every output from {SCALE[0]} to {SCALE[1]}:</p><dl>{guide}</dl>"
            f"<table><thead><tr><th>item</th><th>input</th><th>output</th>{header}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            f'<button onclick="saveRatings()">Save ratings as CSV</button>'
            f"<p>Send the saved <code>ratings.csv</code> back; it is read with <code>vaekit raters summarise</code>."
            f"</p></body></html>\n")


# ---- summarise ----------------------------------------------------------------------------------
def read_key(path: str | Path) -> dict:
    """The key written by export_sheet, checked."""
    path = Path(path)
    if not path.is_file():
        raise VaekitError(f"the key file {path} is missing: summarising needs the {KEY} written with the sheet")
    key = runs.read_json(path)
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("items"), dict):
        raise VaekitError(f"{path} is not a vaekit raters key")
    return key


def rating_files(path: str | Path) -> list[Path]:
    """The filled sheets: a CSV file itself, or a folder's ratings*.csv (one per rater)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise VaekitError(f"{path} does not exist")
    files = sorted(path.glob("ratings*.csv"))
    if not files:
        raise VaekitError(f"{path} has no ratings*.csv: save each rater's filled sheet there as ratings.csv, "
                          f"ratings-NAME.csv, ... (or give the CSV's path)")
    return files


def read_ratings(path: str | Path, key: dict, allow_missing: bool = False) -> list[dict]:
    """Rows {item, input_id, run, <criterion>: int | None} of one filled sheet, validated against the key."""
    path = Path(path)
    criteria, (low, high) = key["criteria"], key["scale"]
    try:
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise VaekitError(f"{path} is not a readable CSV file ({e})") from None
    if not lines:
        raise VaekitError(f"{path} is empty")
    header = [h.strip() for h in lines[0]]
    absent = [c for c in ["item", *criteria] if c not in header]
    if absent:
        raise VaekitError(f"{path} has no column {', '.join(absent)} (columns: {', '.join(header)})")
    rows, first_line = [], {}
    for number, fields in enumerate(lines[1:], start=2):
        if not any(f.strip() for f in fields):
            continue  # a blank line, as spreadsheets sometimes leave at the end
        if len(fields) != len(header):
            raise VaekitError(f"{path} line {number}: {len(fields)} fields, the header has {len(header)}")
        row = dict(zip(header, (f.strip() for f in fields)))
        if row["item"] not in key["items"]:
            raise VaekitError(f"{path} line {number}: item {row['item']!r} is not in the key; "
                              f"is this the sheet the key was written with?")
        if row["item"] in first_line:  # a pasted-twice row would count one rater's scores twice
            raise VaekitError(f"{path} line {number}: item {row['item']!r} is rated again (first on line "
                              f"{first_line[row['item']]}); keep one row per item")
        first_line[row["item"]] = number
        rating = {"item": row["item"], "input_id": row["item"].split("-")[0], "run": key["items"][row["item"]]}
        for c in criteria:
            rating[c] = _score(row[c], low, high, allow_missing, f"{path} line {number}, {c}")
        rows.append(rating)
    if not rows:
        raise VaekitError(f"{path} has no ratings")
    if all(r[c] is None for r in rows for c in criteria):  # only reachable with allow_missing
        raise VaekitError(f"{path} has no scores at all: it is an unfilled sheet; fill it in or leave it out")
    return rows


def _score(text: str, low: int, high: int, allow_missing: bool, where: str) -> int | None:
    if not text:
        if allow_missing:
            return None
        raise VaekitError(f"{where}: the score is missing (fill it in, or pass --allow-missing to skip empty ones)")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or not low <= value <= high:  # nan and inf are not integers
        raise VaekitError(f"{where}: {text!r} is not a whole number from {low} to {high}")
    return int(value)


def summarise(paths, key_path: str | Path | None = None, allow_missing: bool = False) -> dict:
    """Per run and criterion: mean, std, n; for two runs a paired comparison over inputs.

    paths: one CSV, a folder of ratings*.csv, or a list of those. The key defaults to key.json beside
    the first file.
    """
    files = [f for p in ([paths] if isinstance(paths, (str, Path)) else paths) for f in rating_files(p)]
    _check_distinct(files)
    key = read_key(key_path or files[0].parent / KEY)
    ratings = [r for f in files for r in read_ratings(f, key, allow_missing)]
    result = {"files": [str(f) for f in files], "n_ratings": len(ratings), "scale": key["scale"], "runs": {}}
    for label in key["runs"]:
        mine = [r for r in ratings if r["run"] == label]
        result["runs"][label] = {c: _describe([r[c] for r in mine if r[c] is not None]) for c in key["criteria"]}
    if len(key["runs"]) == 2:
        result["paired"] = {c: _paired(ratings, c, *key["runs"]) for c in key["criteria"]}
    return result


def _check_distinct(files: list[Path]) -> None:
    """Refuses a sheet given twice (by two paths, or as a copy): each file counts as one more rater."""
    by_path: dict[Path, Path] = {}
    by_content: dict[bytes, Path] = {}
    for f in files:
        resolved, digest = f.resolve(), hashlib.sha256(f.read_bytes()).digest()
        if resolved in by_path:
            also = "" if str(by_path[resolved]) == str(f) else f" (also as {by_path[resolved]})"
            raise VaekitError(f"the rating file {f} is given twice{also}; give each rater's sheet once")
        if digest in by_content:
            raise VaekitError(f"{f} has the same content as {by_content[digest]}: one rater's sheet given twice? "
                              f"Each file counts as one rater; give each sheet once")
        by_path[resolved] = by_content[digest] = f


def _describe(scores: list[int]) -> dict:
    if not scores:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
            "n": len(scores)}


def _paired(ratings: list[dict], criterion: str, a: str, b: str) -> dict:
    """Per input, run a's mean score minus run b's, over the inputs both runs have scores for."""
    per_input: dict[str, dict[str, list[int]]] = {}
    for r in ratings:
        if r[criterion] is not None:
            per_input.setdefault(r["input_id"], {}).setdefault(r["run"], []).append(r[criterion])
    diffs = np.array([np.mean(s[a]) - np.mean(s[b]) for s in per_input.values() if a in s and b in s])
    out = {"n_inputs": len(diffs), "mean_difference": float(diffs.mean()) if len(diffs) else None,
           "a_better": int((diffs > 0).sum()), "ties": int((diffs == 0).sum()), "b_better": int((diffs < 0).sum()),
           "wilcoxon_p": None}
    if (diffs != 0).any():
        from scipy.stats import wilcoxon

        out["wilcoxon_p"] = float(wilcoxon(diffs, zero_method="wilcox").pvalue)  # ties (0) are dropped
    return out


def format_summary(summary: dict) -> str:
    """The summary as a few readable lines."""
    lines = [f"{summary['n_ratings']} ratings from {len(summary['files'])} file(s), scale "
             f"{summary['scale'][0]}-{summary['scale'][1]}"]
    for label, stats in summary["runs"].items():
        lines.append(f"run {label}:")
        lines += [f"  {c:<8} " + ("no scores" if s["n"] == 0 else f"mean {s['mean']:.2f}  std {s['std']:.2f}  "
                                                                  f"n {s['n']}") for c, s in stats.items()]
    if "paired" in summary:
        a, b = summary["runs"]
        lines.append(f"paired over inputs (first run minus second: {a} - {b}):")
        for c, p in summary["paired"].items():
            if not p["n_inputs"]:
                lines.append(f"  {c:<8} no input rated for both runs")
                continue
            pval = "n/a (no differences)" if p["wilcoxon_p"] is None else f"{p['wilcoxon_p']:.3g}"
            lines.append(f"  {c:<8} mean difference {p['mean_difference']:+.2f} over {p['n_inputs']} inputs; "
                         f"first better {p['a_better']}, ties {p['ties']}, second better {p['b_better']}; "
                         f"Wilcoxon p {pval}")
    return "\n".join(lines)


# ---- from runs ----------------------------------------------------------------------------------
def export_runs(run_paths: list[str | Path], data: str, out: str | Path, n_inputs: int = 20, variations: int = 3,
                seed: int = 0, spread: float = 1.0, config=None, column: str | None = None) -> dict[str, Path]:
    """A rating sheet of `variations` outputs of one or two text runs (`TextRun.vary`) for `n_inputs`
    sentences of `data` (a file, a CSV with its sentences in `column`, or "ptb:test"), drawn at random
    with `seed`, the same for both runs. config: how to vary, an EditConfig (None: vary's defaults, what
    `vaekit vary` writes) or a DecodeConfig (writing from the code alone)."""
    import dataclasses

    from . import api
    from .editing import EditConfig
    from .modalities.text import read_texts

    config = config or EditConfig()
    if len({Path(p).resolve() for p in run_paths}) != len(run_paths):
        raise VaekitError("give two different runs to compare (the same run was given twice)")
    if n_inputs < 1 or variations < 1:
        raise VaekitError(f"need at least 1 input and 1 variation, got -n {n_inputs} --variations {variations}")
    loaded = [api.load(p) for p in run_paths]
    for run in loaded:
        if not run.modality.makes_text:
            raise VaekitError(f"{run.path} is {run.modality.article} {run.kind} run: rating sheets are for text runs")
    sentences = [s for s in read_texts(data, loaded[0].read_from(column=column).data_config, default_split="test")
                 if s.strip()]
    if not sentences:
        raise VaekitError(f"{data} has no sentences")
    chosen = sorted(np.random.default_rng(seed).choice(len(sentences), min(n_inputs, len(sentences)), replace=False))
    inputs = [sentences[i] for i in chosen]
    outputs = {str(run.path): [run.vary(s, variations, spread, config, seed=seed + i)
                               for i, s in enumerate(inputs)] for run in loaded}
    settings = {"data": data, "n_inputs": len(inputs), "variations": variations, "spread": spread,
                "method": "edit" if isinstance(config, EditConfig) else "decode", "config": dataclasses.asdict(config)}
    return export_sheet(inputs, outputs, out, seed=seed, settings=settings)
