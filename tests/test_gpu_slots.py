"""tfvaegan.gpu_slots, the local GPU pool, on faked GPUs (this machine has none): which GPUs are found, which
slots a job competes for, that jobs holding slots get distinct GPUs (and at most jobs_per_gpu share one), that
a released slot is taken again, and that the wrapped command sees its GPU in CUDA_VISIBLE_DEVICES and holds the
slot until it ends. The workflow's wiring (every GPU rule's command runs under it; a run on a faked single GPU
runs its GPU jobs one at a time) is in tests/test_workflow.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

from tfvaegan import gpu_slots

SMI_LISTING = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1111)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-2222)
  MIG 1g.10gb     Device  0: (UUID: MIG-3333)
GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-4444)
"""


def fake_smi(listing: str = SMI_LISTING, returncode: int = 0):
    """A stand-in for subprocess.run answering `nvidia-smi -L`."""
    def run(args, **kwargs):
        assert args == ["nvidia-smi", "-L"]
        return subprocess.CompletedProcess(args, returncode, stdout=listing, stderr="")
    return run


def no_smi(args, **kwargs):
    raise FileNotFoundError(2, "No such file or directory", "nvidia-smi")


# --------------------------------------------------------------------------- which GPUs
@pytest.mark.parametrize("value, devices", [
    ("0,1,2", ["0", "1", "2"]), (" 3, 1 ", ["3", "1"]), ("GPU-1111,GPU-2222", ["GPU-1111", "GPU-2222"]),
    ("", []), ("-1", []), ("NoDevFiles", []), ("0,-1,2", ["0"]), ("1,,2", ["1"]),
])
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, devices):
    assert gpu_slots.parse_visible(value) == devices


def test_visible_gpus_come_from_cuda_visible_devices_else_nvidia_smi():
    assert gpu_slots.visible_gpus({}, fake_smi()) == ["0", "1", "2"]  # the MIG line is not a GPU of its own
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": "2"}, fake_smi()) == ["2"]
    assert gpu_slots.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, fake_smi()) == []
    assert gpu_slots.visible_gpus({}, no_smi) == []
    assert gpu_slots.visible_gpus({}, fake_smi("NVIDIA-SMI has failed", returncode=9)) == []


def test_the_pool_is_the_gpus_found_or_the_count_the_config_gives():
    assert gpu_slots.pool_devices(None, {}, fake_smi()) == ["0", "1", "2"]
    assert gpu_slots.pool_devices(2, {}, fake_smi()) == ["0", "1"]
    assert gpu_slots.pool_devices(2, {"CUDA_VISIBLE_DEVICES": "3,1,0"}, fake_smi()) == ["3", "1"]
    assert gpu_slots.pool_devices(4, {}, no_smi) == ["0", "1", "2", "3"]  # GPUs not found (or faked)
    assert gpu_slots.pool_devices(0, {}, fake_smi()) == []


def test_the_slots_a_job_competes_for():
    four = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert gpu_slots.plan("cpu", None, four).devices == ()
    assert gpu_slots.plan("cpu", None, four, requested=1).devices == ("0", "1", "2", "3")  # it asked for one
    assert gpu_slots.plan("auto", None, four) == gpu_slots.Plan(("0", "1", "2", "3"), False, "a slot of 4 GPU(s)")
    assert gpu_slots.plan("cuda", 2, four).devices == ("0", "1")
    pinned = gpu_slots.plan("cuda:2", None, {"CUDA_VISIBLE_DEVICES": "5,6,7"})
    assert (pinned.devices, pinned.pinned) == (("7",), True)  # CUDA_VISIBLE_DEVICES is then left alone
    assert gpu_slots.plan("cuda:3", None, {"CUDA_VISIBLE_DEVICES": "0"}).devices == ()  # the stage says why
    assert gpu_slots.plan("auto", None, {"CUDA_VISIBLE_DEVICES": ""}).devices == ()  # no GPU: the CPU
    # inside a SLURM job SLURM assigned the GPUs, unless the config gives the pool's size
    slurm = {**four, "SLURM_JOB_ID": "42"}
    assert gpu_slots.plan("cuda", None, slurm).devices == ()
    assert "SLURM job 42" in gpu_slots.plan("cuda", None, slurm).why
    assert gpu_slots.plan("cuda", 1, slurm).devices == ("0",)


# --------------------------------------------------------------------------- claiming, in this process
def test_slots_spread_over_the_cards_first_and_a_released_slot_is_taken_again(tmp_path):
    held = [gpu_slots.try_claim(["0", "1"], 2, tmp_path) for _ in range(4)]
    assert [(device, number) for device, number, _ in held] == [("0", 0), ("1", 0), ("0", 1), ("1", 1)]
    assert gpu_slots.try_claim(["0", "1"], 2, tmp_path) is None  # 2 GPUs x 2 jobs: all taken
    os.close(held[1][2])  # GPU 1's first slot: its job ended
    again = gpu_slots.try_claim(["0", "1"], 2, tmp_path)
    assert again[:2] == ("1", 0)
    for _, _, fd in [*held[:1], *held[2:], again]:
        os.close(fd)


def test_a_claim_waits_until_a_slot_is_released(tmp_path):
    first = gpu_slots.claim(["0"], 1, tmp_path)
    waited = []
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.6)"], pass_fds=(first.fd,))
    first.release()  # the child alone holds the lock now, as a job's command does after the wrapper's exec
    began = time.monotonic()
    second = gpu_slots.claim(["0"], 1, tmp_path, poll=0.05, on_wait=lambda: waited.append(True))
    assert proc.wait(timeout=30) == 0
    assert waited == [True] and time.monotonic() - began >= 0.3 and second.device == "0"
    second.release()


# --------------------------------------------------------------------------- the wrapper, as jobs run it
JOB = ("import json, os, sys, time; start = time.time(); time.sleep(float(sys.argv[2])); "
       "open(sys.argv[1], 'w').write(json.dumps({'gpu': os.environ.get('CUDA_VISIBLE_DEVICES'), "
       "'start': start, 'end': time.time()}))")


def run_jobs(tmp_path: Path, n_jobs: int, *options: str, seconds: float = 0.6) -> list[dict]:
    """N_JOBS wrapped jobs started at once (as Snakemake starts them), each recording the GPU it saw and when
    it ran; their logs as the workflow's rules write them."""
    env = {**os.environ, "TFVAEGAN_GPU_SLOT_DIR": str(tmp_path / "slots"), "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    procs = [subprocess.Popen([sys.executable, "-m", "tfvaegan.gpu_slots", *options, "--",
                               sys.executable, "-c", JOB, str(tmp_path / f"job{i}.json"), str(seconds)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(n_jobs)]
    logs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), logs
    return [{**json.loads((tmp_path / f"job{i}.json").read_text()), "log": log} for i, log in enumerate(logs)]


def overlapping(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_on_one_gpu_the_jobs_run_one_at_a_time(tmp_path):
    jobs = run_jobs(tmp_path, 3, "--device", "auto", "--gpus", "1", "--jobs-per-gpu", "1")
    assert [job["gpu"] for job in jobs] == ["0", "0", "0"]
    assert not any(overlapping(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:]), jobs
    assert sum("waiting" in job["log"] for job in jobs) >= 1
    assert all("gpu slot: GPU 0 (slot 1 of 1" in job["log"] for job in jobs)


def test_on_several_gpus_each_job_runs_on_its_own(tmp_path):
    jobs = run_jobs(tmp_path, 4, "--device", "cuda", "--gpus", "2", "--jobs-per-gpu", "1", seconds=1.0)
    assert sorted(job["gpu"] for job in jobs) == ["0", "0", "1", "1"]
    for i, a in enumerate(jobs):  # two jobs at once are always on two GPUs
        for b in jobs[i + 1:]:
            assert not (overlapping(a, b) and a["gpu"] == b["gpu"]), (a, b)
    assert any(overlapping(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:])  # and the two GPUs did work


def test_jobs_per_gpu_lets_jobs_share_a_card(tmp_path):
    jobs = run_jobs(tmp_path, 2, "--device", "auto", "--gpus", "1", "--jobs-per-gpu", "2", seconds=1.0)
    assert [job["gpu"] for job in jobs] == ["0", "0"] and overlapping(*jobs)
    assert sorted(job["log"].split("(slot ")[1][:1] for job in jobs) == ["1", "2"]


def test_a_cpu_job_or_a_machine_without_gpus_claims_nothing(tmp_path):
    for options in (["--device", "cpu", "--gpus", "1"], ["--device", "auto"]):
        (job,) = run_jobs(tmp_path, 1, *options, seconds=0)
        assert job["gpu"] is None and "gpu slot: none" in job["log"]
    assert not list((tmp_path / "slots").glob("*.lock"))


def test_the_wrapper_says_what_is_wrong_in_one_line(tmp_path):
    env = {**os.environ, "TFVAEGAN_GPU_SLOT_DIR": str(tmp_path)}
    for args, message in ((["--device", "cuda"], "expected a command after --"),
                          (["--device", "cuda", "--gpus", "two", "--", "true"], "--gpus: expected auto or an integer"),
                          (["--device", "cpu", "--", "no-such-command-here"], "no-such-command-here")):
        done = subprocess.run([sys.executable, "-m", "tfvaegan.gpu_slots", *args], capture_output=True, text=True,
                              env=env, cwd=PROJECT_ROOT, timeout=60, check=False)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr


def test_the_record_of_a_run_names_the_gpu_it_was_given(monkeypatch):
    from tfvaegan.record import PROVENANCE_KEYS, provenance

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    record = provenance()
    assert record["cuda_visible_devices"] == "3" and "cuda_visible_devices" in PROVENANCE_KEYS
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert provenance()["cuda_visible_devices"] is None
