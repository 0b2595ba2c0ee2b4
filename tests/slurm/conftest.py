"""A real single-node Slurm cluster (with accounting) for the `slurm`-marked tests.

`slurm_cluster` (session scope) starts munge, MariaDB, slurmdbd, slurmctld and slurmd with
.ci/slurm/start.sh in a fresh run folder, exports SLURM_CONF for this process (jobs inherit it),
and at the end stops every daemon by its saved PID with .ci/slurm/stop.sh, then checks that
none of those PIDs is still alive. It skips when the Slurm/munge/MariaDB binaries are missing
(install them with .ci/slurm/install.sh), when not root, or when submitit is not importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / ".ci" / "slurm"
BINARIES = ("sinfo", "sbatch", "sacct", "sacctmgr", "scancel", "squeue", "srun", "slurmctld",
            "slurmd", "slurmdbd", "munged", "mungekey", "mariadbd", "mariadb-install-db")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 120


@dataclass
class SlurmCluster:
    run_dir: Path
    partition: str
    conf: Path
    pids: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SBIN_PATH}


def pid_alive(pid: int, name: str) -> bool:
    """True while `pid` is a live (not zombie) process whose command is `name`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
    return comm == name[:15] and state not in "ZX"


def alive_daemons(cluster: SlurmCluster) -> list[str]:
    return [f"{n} (PID {p})" for n, p in cluster.pids.items() if pid_alive(p, n)]


def skip_reason() -> str | None:
    missing = [b for b in BINARIES if shutil.which(b, path=SBIN_PATH) is None]
    if missing:
        return f"Slurm binaries missing ({', '.join(missing)}): run .ci/slurm/install.sh as root"
    if os.geteuid() != 0:
        return "the private Slurm cluster runs its daemons as root; not root"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return 'submitit not importable: pip install -e ".[cluster]"'
    return None


def _log_tail(run_dir: Path, lines: int = 15) -> str:
    out = []
    for log in sorted((run_dir / "log").glob("*")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"== {log.name}\n" + "\n".join(text))
    return "\n".join(out)


def stop_cluster(cluster: SlurmCluster) -> list[str]:
    """Stop by saved PIDs; return the daemons still alive afterwards (empty when clean)."""
    subprocess.run([str(SCRIPTS / "stop.sh"), str(cluster.run_dir)], env=cluster.env(),
                   timeout=STOP_TIMEOUT_S, check=False)
    return alive_daemons(cluster)


def start_cluster(run_dir: Path | None = None) -> SlurmCluster:
    """Start a cluster in `run_dir` (default: a new short folder under /tmp: socket paths
    must stay under 108 characters). Fails the test with the daemons' log tails on error."""
    run_dir = Path(run_dir or tempfile.mkdtemp(prefix="nfbench-slurm-"))
    env = {**os.environ, "PATH": SBIN_PATH}
    env.pop("SLURM_CONF", None)
    pidfiles = lambda: {p.stem: int(p.read_text()) for p in (run_dir / "pids").glob("*.pid")}  # noqa: E731
    try:
        proc = subprocess.run([str(SCRIPTS / "start.sh"), str(run_dir)], env=env,
                              capture_output=True, text=True, timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        partial = SlurmCluster(run_dir, "debug", run_dir / "etc/slurm.conf", pidfiles())
        stop_cluster(partial)
        pytest.fail(f"start.sh timed out after {START_TIMEOUT_S} s\n{_log_tail(run_dir)}")
    if proc.returncode != 0:
        pytest.fail(f"start.sh failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return SlurmCluster(run_dir=run_dir, partition="debug", conf=run_dir / "etc/slurm.conf",
                        pids=pidfiles())


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = start_cluster()
    old_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if old_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old_conf
        alive = stop_cluster(cluster)
        if alive:
            pytest.fail(f"Slurm daemons still alive after stop.sh: {', '.join(alive)}")
        shutil.rmtree(cluster.run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm_lifecycle() -> SimpleNamespace:
    """The helpers themselves, for tests of start.sh/stop.sh: start() -> SlurmCluster,
    stop(cluster) -> daemons still alive, alive(cluster), remove(cluster) (its run folder)."""
    return SimpleNamespace(start=start_cluster, stop=stop_cluster, alive=alive_daemons,
                           remove=lambda c: shutil.rmtree(c.run_dir, ignore_errors=True))
