"""SIGKILL for every kind of run (issue 30): text, tabular and refine runs killed at a random moment
and resumed end bit-identical to an uninterrupted run (fp32, one thread); the verbs that read a run
(evaluate, anomalies, embed, export) killed while writing leave no report that looks complete and a
rerun works. One kill each keeps this file's cost small; bench/faults.py kills every kind many times,
--nproc 2 runs (a rank, the launcher) included.
"""
import os

import pytest
import torch

from vaekit.cli import main

from .faultlib import check_run_files, kill_job, kill_resume_loop, kill_verb, reference_for, vaekit_env, write_corpus


@pytest.fixture(autouse=True)
def _threads_restored():
    before = torch.get_num_threads()  # the in-process runs set --threads 1
    yield
    torch.set_num_threads(before)


SEED = int(os.environ.get("VAEKIT_FAULT_SEED", "20261206"))  # set it to try other kill moments


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("text") / "corpus.txt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small image run: the source of refine and the run the verbs read."""
    out = tmp_path_factory.mktemp("faults-kinds") / "run"
    assert main(["train", "image", "--out", str(out), "--model", "seed", "--epochs", "2", "--threads", "1",
                 "--no-progress"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["text", "tabular", "refine"])
def test_a_killed_run_of_every_kind_resumes_to_the_uninterrupted_weights(kind, tmp_path, corpus, trained):
    data = {"text": corpus, "refine": trained}.get(kind)
    reference = reference_for(kind, tmp_path / "reference", data, in_process=True)
    out = tmp_path / "run"
    report = kill_resume_loop(out, kills=1, seed=SEED, reference=reference,
                              job=kill_job(kind, out, reference, data))
    assert report.kills_tried == 1, report.log
    assert report.corrupt == [] and report.orphans == []
    for before, resumed in report.resumed_at:  # the resume started at the last complete checkpoint
        assert resumed == before, report.log
    assert report.identical, f"the resumed {kind} run's weights differ from the uninterrupted run's"
    assert report.kills_survived == 1
    assert check_run_files(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["evaluate", "anomalies", "embed", "export"])
def test_a_verb_killed_while_writing_leaves_no_report_that_looks_complete(verb, tmp_path, trained):
    result = kill_verb(verb, trained, tmp_path / "out", seed=SEED, in_process=True)
    assert result.problems == []
    assert result.rerun_ok, result.log


def test_a_run_killed_before_its_config_was_written_can_be_replaced(tmp_path, capsys):
    # Killed between its first files (summary.txt, tokenizer.json, ...) and config.json: it was
    # neither a run (resume refused it) nor replaceable (--overwrite refused it too).
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.txt").write_text("model summary\n")
    (out / "tokenizer.json").write_text("{}")
    (out / ".config.json.k2j4x9.tmp").write_text("{")
    command = ["train", "image", "--out", str(out), "--model", "seed", "--epochs", "1", "--threads", "1",
               "--no-progress"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "stopped before its config.json was written" in err and "--overwrite" in err
    assert main(command + ["--overwrite"]) == 0
    assert check_run_files(out) == [] and not (out / "tokenizer.json").exists() and not list(out.glob(".*.tmp"))
    (out.parent / "mine").mkdir()
    (out.parent / "mine" / "summary.txt").write_text("the user's")
    (out.parent / "mine" / "notes.txt").write_text("the user's")
    assert main(["train", "image", "--out", str(out.parent / "mine"), "--overwrite", "--epochs", "1"]) == 2
    assert "is not a vaekit run" in capsys.readouterr().err  # a folder with other files stays the user's


def test_the_workers_of_a_killed_launcher_die_with_it(tmp_path):
    # vaekit train --nproc N: the workers run in sessions of their own, so a SIGKILLed launcher
    # used to leave them training and writing the run beside a later resume.
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    worker = ("import os, sys, time; from vaekit.distributed import die_with_launcher; "
              f"die_with_launcher(os.getppid()); open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
              "time.sleep(600)")
    launcher = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; "
                                 f"subprocess.Popen([sys.executable, '-c', {worker!r}], start_new_session=True); "
                                 "time.sleep(600)"], env=vaekit_env())
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = int(pid_file.read_text())
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        launcher.kill()


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
