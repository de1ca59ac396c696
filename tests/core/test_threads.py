"""CPUs available to the process (affinity, cgroup v1/v2 quotas) and the OpenMP wait policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.core.errors import InvalidInputError
from edgekit.core.threads import (
    available_cpus,
    cgroup_cpu_quota,
    quiet_openmp_env,
    training_threads,
)


def _tree(tmp_path: Path, files: dict[str, str], own: str) -> dict[str, Path]:
    """sysfs/procfs roots with ``files`` (relative to the sysfs root) and /proc/self/cgroup."""
    for rel, text in files.items():
        (tmp_path / "sys" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "sys" / rel).write_text(text + "\n")
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(own)
    return {"sys_root": tmp_path / "sys", "proc_root": tmp_path / "proc"}


V2 = "fs/cgroup/cgroup.controllers"
V1_HYBRID = "1:cpu,cpuacct:{}\n0::/\n4:memory:/x\n"  # a v1 host with an (empty) unified part


@pytest.fixture(autouse=True)
def eight_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


@pytest.mark.parametrize(("cpu_max", "quota", "cpus"), [
    ("150000 100000", 1.5, 2),  # 1.5 CPUs of time: rounded up
    ("400000 100000", 4.0, 4),
    ("max 100000", None, 8),  # no limit: the affinity mask
    ("1600000 100000", 16.0, 8),  # a quota above the mask does not add CPUs
])
def test_cgroup_v2_quota_of_the_process_own_cgroup(tmp_path, cpu_max, quota, cpus):
    roots = _tree(tmp_path, {V2: "cpu memory", "fs/cgroup/user.slice/job/cpu.max": cpu_max},
                  own="0::/user.slice/job\n")
    assert cgroup_cpu_quota(**roots) == quota
    assert available_cpus(**roots) == cpus


def test_cgroup_v2_nested_quotas_the_smallest_wins(tmp_path):
    roots = _tree(tmp_path, {V2: "cpu", "fs/cgroup/kubepods/cpu.max": "100000 100000",
                             "fs/cgroup/kubepods/pod/cpu.max": "300000 100000"},
                  own="0::/kubepods/pod\n")
    assert available_cpus(**roots) == 1


def test_cgroup_v2_in_a_namespace_and_a_path_the_mount_does_not_show(tmp_path):
    # Inside a container the mount's root is the container's cgroup; without a cgroup
    # namespace /proc/self/cgroup still names the host's path, which is not under the mount.
    roots = _tree(tmp_path, {V2: "cpu", "fs/cgroup/cpu.max": "200000 100000"},
                  own="0::/docker/0123abcd\n")
    assert available_cpus(**roots) == 2


@pytest.mark.parametrize(("quota_us", "cpus"), [("50000", 1), ("250000", 3), ("-1", 8)])
def test_cgroup_v1_cfs_quota(tmp_path, quota_us, cpus):
    base = "fs/cgroup/cpu/kubepods/pod1"
    roots = _tree(tmp_path, {f"{base}/cpu.cfs_quota_us": quota_us,
                             f"{base}/cpu.cfs_period_us": "100000",
                             "fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
                             "fs/cgroup/cpu/cpu.cfs_period_us": "100000"},
                  own=V1_HYBRID.format("/kubepods/pod1"))
    assert available_cpus(**roots) == cpus


@pytest.mark.parametrize("files", [{}, {V2: "cpu"}, {"fs/cgroup/cpu/cpu.cfs_quota_us": "junk"}])
def test_missing_or_unreadable_cgroup_files_leave_the_affinity_mask(tmp_path, files):
    roots = _tree(tmp_path, files, own="")
    assert cgroup_cpu_quota(**roots) is None
    assert available_cpus(**roots) == 8


def test_without_sched_getaffinity_the_cpu_count_is_used(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert available_cpus(**_tree(tmp_path, {}, own="")) == 3


def test_training_threads_takes_the_request_or_the_available_cpus():
    assert training_threads(3) == 3
    assert training_threads(None) == available_cpus() == 8
    for bad in (0, -2):
        with pytest.raises(InvalidInputError, match="threads must be >= 1"):
            training_threads(bad)


def test_quiet_openmp_env_keeps_the_user_setting(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    quiet_openmp_env()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    quiet_openmp_env()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_the_cli_sets_the_wait_policy_before_torch_is_imported():
    # OpenMP reads it once when torch loads it, so main() must set it before any import of torch
    code = ("import json, os, sys\nfrom edgekit.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit:\n    pass\n"
            "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert json.loads(out.stdout.splitlines()[-1]) == ["PASSIVE", False]
