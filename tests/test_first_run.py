"""The README's first command, `vaekit train image` on the bundled digits: its own defaults (enough steps and
a KL weight that leave recognisable digits), typed options win over them, and the done line says how to
explore the run."""
import json

from .test_cli import run_cli


def test_digits_defaults_apply_where_not_typed_and_the_done_line_names_explore(tmp_path, capsys):
    out = tmp_path / "digits"
    code, said, _ = run_cli(capsys, "train", "image", "--out", out, "--epochs", "1", "--no-progress")
    assert code == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert (train["epochs"], train["batch_size"], train["beta"]) == (1, 32, 0.3)  # --epochs typed, the rest not
    assert f"vaekit explore {out}" in said
    # Another model, or other data, keeps the general defaults (the design document's for `seed`).
    code, _, _ = run_cli(capsys, "train", "image", "--out", tmp_path / "seed", "--model", "seed", "--epochs", "1",
                         "--no-progress", "--batch-size=64")
    train = json.loads((tmp_path / "seed" / "config.json").read_text())["train"]
    assert code == 0 and (train["batch_size"], train["beta"]) == (64, 1.0)
