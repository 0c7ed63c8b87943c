"""Issue 12 on the real dev cluster: nobody else's code runs as the user.

Each test has its own job base directory under ``$HOME`` (see ``home_tmp``).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from click.testing import CliRunner, Result
from jobfuncs import add
from nodepython import node_python

from slurm import Cluster, task
from slurm._api.task import Task
from slurm._client.packaging import environment_for
from slurm.cli import main
from slurm.devcluster import SshInfo
from slurm.errors import (
    ConfigurationError,
    InvalidOptionError,
    ResultError,
    SubmissionError,
    TaskFailedError,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cluster(base: Path, **kwargs: Any) -> Cluster:
    return Cluster(
        backend_type="local", job_base_dir=str(base), default_partition="debug", **kwargs
    )


def _job_dirs(base: Path) -> list[str]:
    return [p.name for p in base.iterdir() if not p.name.startswith(".")] if base.exists() else []


def test_new_base_dir_and_index_are_created_private(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "new" / "jobs"
    with _cluster(base):
        assert add(1, 2).get_result(timeout=120) == 3
    assert _mode(base) == 0o700 and _mode(base.parent) == 0o700
    assert _mode(base / ".index") == 0o700
    [job_dir] = _job_dirs(base)
    assert _mode(base / job_dir) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_base_dir_writable_by_others_is_refused(
    devcluster: object, home_tmp: Path, mode: int
) -> None:
    base = home_tmp / "jobs"
    base.mkdir()
    base.chmod(mode)
    with (
        _cluster(base),
        pytest.raises(ConfigurationError, match=rf"has mode {mode:04o}(.|\n)*chmod 700"),
    ):
        add(1, 2)
    assert _job_dirs(base) == []


def test_index_writable_by_others_is_refused(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    (base / ".index").mkdir(parents=True)
    (base / ".index").chmod(0o777)
    with _cluster(base), pytest.raises(ConfigurationError, match=r"index_owner: .*\.index"):
        add(1, 2)
    assert _job_dirs(base) == []


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_base_dir_of_another_user_is_refused(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    base.mkdir(mode=0o700)
    os.chown(base, 65534, 65534)
    with _cluster(base), pytest.raises(ConfigurationError, match="owned by uid 65534, not by you"):
        add(1, 2)


def test_base_dir_through_a_neighbours_link_is_refused_and_results_are_not_read(
    devcluster: object, home_tmp: Path, intruder: pwd.struct_passwd
) -> None:
    """A neighbour's symbolic link to the user's own private directory: it would pass a
    check of its target, and the neighbour could re-point it after. Refused before
    submission; and a result already there is not unpickled through it."""
    mine = home_tmp / "jobs"
    mine.mkdir(mode=0o700)
    sticky = home_tmp / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    link = sticky / "jobs"
    link.symlink_to(mine)
    with _cluster(link):  # while the link is the user's own, it is followed
        job = add(1, 2)
        assert job.get_result(timeout=120) == 3
    os.lchown(link, intruder.pw_uid, intruder.pw_gid)
    with _cluster(link), pytest.raises(ConfigurationError, match=r"symbolic link .*uid"):
        add(1, 2)
    assert len(_job_dirs(mine)) == 1
    with _cluster(link) as cluster:
        again = cluster.get_job(job.id)
        with pytest.raises(ResultError, match="symbolic link"):
            again.get_result(timeout=30)


def test_shipped_source_a_neighbour_planted_first_never_runs(
    devcluster: object, home_tmp: Path, intruder: pwd.struct_passwd
) -> None:
    """Shipped source is reused from ``.code/<content hash>`` once that directory exists.
    A neighbour who made the environments directory first (in a shared sticky directory)
    and planted a directory of that name, with their own ``jobfuncs.py``, is refused
    before submission: their module never runs."""
    own = home_tmp / "own-envs"
    with _cluster(home_tmp / "jobs", packaging={"env_dir": str(own)}):
        assert add(1, 2).get_result(timeout=120) == 3
    [shipped] = (own / ".code").iterdir()
    sticky = home_tmp / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    theirs = sticky / "envs"
    planted = theirs / ".code" / shipped.name
    planted.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(shipped), str(planted.parent)], check=True)
    marker = home_tmp / "PLANTED-RAN"
    [module] = planted.rglob("jobfuncs.py")
    module.chmod(0o644)
    module.write_text(f"open({str(marker)!r}, 'w').close()\n" + module.read_text())
    subprocess.run(["chown", "-R", f"{intruder.pw_uid}:{intruder.pw_gid}", str(theirs)], check=True)
    base = home_tmp / "jobs2"
    with (
        _cluster(base, packaging={"env_dir": str(theirs)}),
        pytest.raises(ConfigurationError, match=rf"{theirs}.*owned by uid {intruder.pw_uid}"),
    ):
        add(1, 2)
    assert _job_dirs(base) == [] and not marker.exists()


def test_parent_writable_by_others_needs_the_sticky_bit(devcluster: object, home_tmp: Path) -> None:
    shared = home_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    base = shared / "jobs"
    with _cluster(base), pytest.raises(ConfigurationError, match="without the sticky bit"):
        add(1, 2)
    shared.chmod(0o1777)  # like /tmp: others cannot rename what is not theirs
    with _cluster(base):
        assert add(2, 3).get_result(timeout=120) == 5


def test_doctor_and_diagnose_report_an_env_dir_others_can_write(
    devcluster: object, home_tmp: Path
) -> None:
    envs = home_tmp / "envs"
    envs.mkdir()
    envs.chmod(0o777)
    cluster = _cluster(home_tmp / "jobs", packaging={"type": "wheel", "env_dir": str(envs)})
    with cluster:
        report = cluster.diagnose()
    assert not report["ok"]
    [check] = [c for c in report["checks"] if c["name"] == "base_dir"]
    assert check["status"] == "fail" and "has mode 0777" in check["detail"]


# --- the job's Python cannot pick up stray files ----------------------------------------


def _where_am_i() -> Task[..., dict[str, Any]]:
    # Defined here so that it travels by value (this module is not importable over SSH).
    @task(time="00:02:00", mem="64M")
    def where_am_i() -> dict[str, Any]:
        import cloudpickle as loaded

        return {"cwd": os.getcwd(), "path": list(sys.path), "cloudpickle": loaded.__file__}

    return where_am_i


def _stray_dir(home_tmp: Path) -> Path:
    stray = home_tmp / "stray"
    stray.mkdir()
    (stray / "cloudpickle.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('IMPORTED').touch()\n"
        "raise ImportError('a stray cloudpickle.py was imported')\n"
    )
    return stray


def _assert_clean(seen: dict[str, Any], stray: Path) -> None:
    assert seen["cwd"] == str(stray)
    assert str(stray) not in seen["path"] and "" not in seen["path"]
    assert not seen["cloudpickle"].startswith(str(stray))
    assert not (stray / "IMPORTED").exists()


def test_stray_module_in_the_jobs_working_directory_over_ssh(
    devcluster_ssh: SshInfo, home_tmp: Path
) -> None:
    stray = _stray_dir(home_tmp)
    with Cluster(
        backend_type="ssh",
        hostname=devcluster_ssh.alias,
        username=devcluster_ssh.username,
        python=node_python(),
        job_base_dir=str(home_tmp / "jobs"),
        default_partition="debug",
    ):
        job = _where_am_i().with_options(chdir=str(stray))()
        _assert_clean(job.get_result(timeout=240), stray)


def test_stray_module_in_the_clients_working_directory(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stray = _stray_dir(home_tmp)
    monkeypatch.chdir(stray)  # the local backend's job runs where the client does
    monkeypatch.setattr(sys, "path", ["", *sys.path])  # as under `python -c` or a REPL
    with _cluster(home_tmp / "jobs"):
        _assert_clean(_where_am_i()().get_result(timeout=120), stray)


def test_stray_module_reaches_no_rank_and_no_empty_pythonpath_entry(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rank's runner starts with the working directory off ``sys.path``, and an
    empty or relative ``PYTHONPATH`` entry (which would name it again) is dropped."""
    stray = _stray_dir(home_tmp)
    monkeypatch.chdir(stray)
    monkeypatch.setenv("PYTHONPATH", ":relative/dir:")  # sbatch exports it to the job
    with _cluster(home_tmp / "jobs"):
        job = _where_am_i().with_options(ntasks=2, mem="256M")()
        _assert_clean(job.get_result(timeout=180), stray)
    assert not (stray / "IMPORTED").exists()


def _environment_of_the_job() -> Task[..., dict[str, str]]:
    @task(time="00:02:00", mem="64M")
    def environment() -> dict[str, str]:
        return dict(os.environ)

    return environment


def test_the_sdks_secret_never_reaches_a_local_job(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sbatch exports the submitter's environment: ``$SLURM_SDK_PASSWORD`` is not passed
    to it (the rest is, as Slurm users expect)."""
    monkeypatch.setenv("SLURM_SDK_PASSWORD", "hunter2")
    monkeypatch.setenv("SDK_TEST_PLAIN", "kept")
    with _cluster(home_tmp / "jobs"):
        seen = _environment_of_the_job()().get_result(timeout=120)
    assert "SLURM_SDK_PASSWORD" not in seen and seen["SDK_TEST_PLAIN"] == "kept"
    assert "hunter2" not in "".join(seen.values())


# --- job ids and index entries ----------------------------------------------------------

HOSTILE_IDS = ["--user=root", "1;id", "$(id)", "../../etc", "1 2", "12_", "٣"]


def _cli(base: Path, command: str, *args: str) -> Result:
    argv = ["jobs", command, "--backend", "local", "--job-base-dir", str(base), *args]
    return CliRunner(env={"COLUMNS": "250"}).invoke(main, argv, catch_exceptions=False)


@pytest.mark.parametrize("command", ["show", "logs", "cancel", "watch"])
def test_cli_refuses_what_is_not_a_job_id(devcluster: object, home_tmp: Path, command: str) -> None:
    for job_id in HOSTILE_IDS:
        result = _cli(home_tmp / "jobs", command, "--", job_id)
        assert result.exit_code == 1, result.output
        assert "is not a Slurm job id" in result.output or "Not the SDK's jobs" in result.output


def test_index_entry_outside_the_base_dir_is_refused(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    with _cluster(base) as cluster:
        job = add(1, 2)
        assert job.get_result(timeout=120) == 3
        for forged, where in [("999991", "/etc"), ("999992", f"{base}/../elsewhere")]:
            (base / ".index" / forged).write_text(where + "\n")
            with pytest.raises(ConfigurationError, match=r"outside .*: refused"):
                cluster.get_job(forged)
            shown = _cli(base, "show", forged)
            assert shown.exit_code == 1 and "refused" in shown.output
    listing = _cli(base, "list")
    assert listing.exit_code == 0, listing.output
    assert "skipped:" in listing.output and "999991" in listing.output
    assert any(line.lstrip("│ ").startswith(f"{job.id} ") for line in listing.output.splitlines())


# --- reading a job's status never unpickles -----------------------------------------------


class _Trap:
    """Unpickling this touches a file: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (str(self.marker),))


def _plant_trap(job_dir: Path, marker: Path) -> None:
    import pickle

    (job_dir / "result.pkl").write_bytes(pickle.dumps(_Trap(marker)))
    (job_dir / "result.pkl").chmod(0o600)


def test_outcome_is_json_beside_the_result(devcluster: object, home_tmp: Path) -> None:
    import json

    from jobfuncs import fail_with

    with _cluster(home_tmp / "jobs"):
        ok, failed = add(1, 2), fail_with("broken on purpose")
        assert ok.get_result(timeout=120) == 3
        failed.wait(timeout=120)
    good = json.loads(Path(ok.job_dir, "result.json").read_text())
    assert (good["ok"], good["summary"], good["job_id"]) == (True, "3", ok.id)
    bad = json.loads(Path(failed.job_dir, "result.json").read_text())
    assert bad["ok"] is False and bad["type_name"] == "jobfuncs.CustomError"
    assert "broken on purpose" in bad["message"] and "Traceback" in bad["traceback"]
    assert _mode(Path(ok.job_dir, "result.json")) == 0o600


def test_status_and_listing_never_unpickle(devcluster: object, home_tmp: Path) -> None:
    base, marker = home_tmp / "jobs", home_tmp / "UNPICKLED"
    with _cluster(base):
        job = add(1, 2)
        job.wait(timeout=120)
    _plant_trap(Path(job.job_dir), marker)
    cluster = _cluster(base)
    with cluster:
        again = cluster.get_job(job.id)
        assert again.get_status().value == "COMPLETED"
        assert again.done() and again.is_successful() and again.wait(timeout=30)
    for command in (["list"], ["show", job.id], ["watch", job.id]):
        result = _cli(base, *command)
        assert result.exit_code == 0, result.output
    # The result comes from result.json's summary (`show` never unpickles): shown as is.
    shown = _cli(base, "show", job.id).output
    assert re.search(r"(?m)^\s*result\s+3\s*$", shown), shown
    assert not marker.exists()


@pytest.mark.parametrize("fault", ["file-mode", "dir-mode", "file-owner"])
def test_get_result_unpickles_only_a_private_file(
    devcluster: object, home_tmp: Path, fault: str
) -> None:
    if fault == "file-owner" and os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    base, marker = home_tmp / "jobs", home_tmp / "UNPICKLED"
    with _cluster(base):
        job = add(1, 2)
        job.wait(timeout=120)
    job_dir = Path(job.job_dir)
    _plant_trap(job_dir, marker)
    if fault == "file-mode":
        (job_dir / "result.pkl").chmod(0o666)
    elif fault == "dir-mode":
        job_dir.chmod(0o777)
    else:
        os.chown(job_dir / "result.pkl", 65534, 65534)
    with _cluster(base) as cluster, pytest.raises(ResultError, match="Refusing to unpickle"):
        cluster.get_job(job.id).get_result(timeout=30)
    assert not marker.exists()


def test_a_job_argument_is_unpickled_on_the_node_only_from_a_private_file(
    devcluster: object, home_tmp: Path, intruder: pwd.struct_passwd
) -> None:
    """A job given another job's result as an argument reads it on the node with the check
    ``get_result()`` makes: a result another user owns is refused there, and nothing in it
    runs."""
    base, marker = home_tmp / "jobs", home_tmp / "UNPICKLED"
    with _cluster(base):
        first = add(1, 2)
        assert add(first, 10).get_result(timeout=120) == 13  # a private result: read
        job_dir = Path(first.job_dir)
        _plant_trap(job_dir, marker)
        os.chown(job_dir / "result.pkl", intruder.pw_uid, intruder.pw_gid)
        with pytest.raises(ResultError, match=r"Refusing to unpickle .*owned by uid"):
            add(first, 10).get_result(timeout=120)
    assert not marker.exists()


# --- environments and wheels are checked by hash ------------------------------------------


def _prefix() -> Task[..., str]:
    @task(time="00:05:00", mem="256M")
    def prefix() -> str:
        return sys.prefix

    return prefix


def test_environment_and_wheels_are_checked_by_hash(devcluster: object, home_tmp: Path) -> None:
    import hashlib
    import json
    import shutil

    envs = home_tmp / "envs"

    def shipped() -> Cluster:
        packaging = {"type": "wheel", "env_dir": str(envs), "project": None}
        return _cluster(home_tmp / "jobs", packaging=packaging)

    with shipped():
        prefix = _prefix()().get_result(timeout=600)
    [env] = [p for p in envs.iterdir() if not p.name.startswith(".")]
    assert prefix == str(env / "venv")
    ready = json.loads((env / "ready.json").read_text())
    assert len(ready["manifest"]) == 64 and ready["wheel_sha256"]

    # Reused as it is, after the job above wrote its byte code.
    (env / "venv" / "lib" / "__pycache__").mkdir(exist_ok=True)
    (env / "venv" / "lib" / "__pycache__" / "new.cpython-311.pyc").write_bytes(b"")
    with shipped() as cluster:
        assert _prefix()().get_result(timeout=600) == prefix
        environment = environment_for(cluster.session)
        assert environment is not None and not environment.created

    # An added file changes the manifest.
    (env / "venv" / "lib" / "extra.pth").write_text("import os\n")
    with shipped(), pytest.raises(ConfigurationError, match=r"changed since it was created"):
        _prefix()()
    (env / "venv" / "lib" / "extra.pth").unlink()
    with shipped():
        assert _prefix()().get_result(timeout=600) == prefix  # as it was

    # A file written, even back to the same bytes, changes it (its change time).
    cfg = env / "venv" / "pyvenv.cfg"
    cfg.write_bytes(cfg.read_bytes())
    with shipped(), pytest.raises(ConfigurationError, match=r"rm -rf"):
        _prefix()()

    # A stored wheel with the wrong content is uploaded again, not used.
    shutil.rmtree(env)
    stored = next((envs / ".store").glob("*/*.whl"))
    stored.write_bytes(b"not a wheel")
    with shipped():
        assert _prefix()().get_result(timeout=600) == prefix
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == stored.parent.name

    # A ready.json that names another key is not trusted either.
    [env] = [p for p in envs.iterdir() if not p.name.startswith(".")]
    record = json.loads((env / "ready.json").read_text())
    (env / "ready.json").write_text(json.dumps({**record, "key": "0" * 24}))
    with shipped(), pytest.raises(ConfigurationError, match=r"does not name the key"):
        _prefix()()


# --- SSH: a password is never stored, logged or given to a job -----------------------------


def _environment() -> Task[..., dict[str, str]]:
    @task(time="00:02:00", mem="64M")
    def environment() -> dict[str, str]:
        return dict(os.environ)

    return environment


def test_password_never_reaches_a_job_or_a_log(
    devcluster_ssh: SshInfo, home_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "pw-" + os.urandom(8).hex()
    caplog.set_level("DEBUG")
    with Cluster(
        backend_type="ssh",
        hostname=devcluster_ssh.alias,
        username=devcluster_ssh.username,
        password=secret,
        python=node_python(),
        job_base_dir=str(home_tmp / "jobs"),
        default_partition="debug",
    ) as cluster:
        assert secret not in repr(cluster.settings)
        env = _environment()().get_result(timeout=240)
    assert all(secret not in value for value in env.values())
    assert secret not in caplog.text
    for path in (home_tmp / "jobs").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# --- bad input: a clear error before anything is submitted, nothing left behind ------------


def test_unknown_partition_leaves_nothing_behind(devcluster: object, home_tmp: Path) -> None:
    # An unknown account or QOS: test_faults.py, on a cluster that enforces associations.
    base = home_tmp / "jobs"
    with (
        _cluster(base),
        pytest.raises(SubmissionError, match=r"(?s)refused the job \(.*invalid partition") as info,
    ):
        add.with_options(partition="no-such-partition")(1, 2)
    assert info.value.refused
    assert _job_dirs(base) == []
    assert list((base / ".index").iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("job_name", True), ("partition", None), ("time", 10**30), ("cpus_per_task", -4)],
)
def test_bad_option_value_is_refused_before_any_directory(
    devcluster: object, home_tmp: Path, option: str, value: object
) -> None:
    base = home_tmp / "jobs"
    with _cluster(base), pytest.raises(InvalidOptionError):
        add.with_options(**{option: value})(1, 2)
    assert _job_dirs(base) == []


# --- reads are bounded ----------------------------------------------------------------


def _noisy() -> Task[..., None]:
    @task(time="00:02:00", mem="128M")
    def noisy(lines: int) -> None:
        for i in range(lines):
            print(f"out {i:07d} " + "x" * 200)
            print(f"err {i:07d} " + "y" * 200, file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)  # ends without a result: the error shows stderr's tail

    return noisy


def test_logs_and_error_tails_read_only_what_they_need(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slurm._transport.local import LocalTransport
    from slurm.errors import JobTerminatedError

    lines = 20_000  # about 4 MiB of each log: several chunks
    base = home_tmp / "jobs"
    with _cluster(base):
        job = _noisy()(lines)
        job.wait(timeout=120)
    whole_reads: list[str] = []
    real = LocalTransport.read_bytes

    def read_bytes(self: LocalTransport, path: str) -> bytes:
        if path.endswith(("/stdout", "/stderr")):
            whole_reads.append(path)
        return real(self, path)

    monkeypatch.setattr(LocalTransport, "read_bytes", read_bytes)
    printed = _cli(base, "logs", job.id, "--follow", "--interval", "0.1")
    assert printed.exit_code == 0, printed.output[-2000:]
    expected = "".join(f"out {i:07d} " + "x" * 200 + "\n" for i in range(lines))
    assert printed.output == expected
    with _cluster(base) as cluster, pytest.raises(JobTerminatedError) as info:
        cluster.get_job(job.id).get_result(timeout=60)
    assert f"err {lines - 1:07d}" in str(info.value) and "err 0000000" not in str(info.value)
    shown = _cli(base, "show", job.id, "--lines", "3")
    assert shown.exit_code == 0 and f"out {lines - 1:07d}" in shown.output
    assert "out 0000000" not in shown.output
    assert whole_reads == []


# --- space is reclaimed ------------------------------------------------------------------


def _age(path: Path, days: float) -> None:
    when = time.time() - days * 86400
    os.utime(path, (when, when))


def _fake_env(envs: Path, key: str, sha: str, *, used_days_ago: float) -> Path:
    wheel = envs / ".store" / sha / f"{key}-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True, exist_ok=True)
    wheel.write_bytes(b"wheel")
    env = envs / key
    (env / "wheels").mkdir(parents=True)
    (env / "wheels" / wheel.name).symlink_to(wheel)
    (env / "ready.json").write_text("{}")
    (env / "last_used").touch()
    _age(env / "last_used", used_days_ago)
    return env


def _not_the_sdks(base: Path, envs: Path, cache: Path, intruder: pwd.struct_passwd) -> list[Path]:
    """Old things prune must leave: not made by the SDK, or not the user's."""
    kept = []
    for where in (base / "data", envs / "notes"):  # the user's, without the SDK's marker
        where.mkdir(parents=True)
        (where / "precious.txt").write_text("mine")
        kept.append(where)
    forged = base / "forged"  # a job.sh of the user's own, not written by the SDK
    forged.mkdir()
    (forged / "job.sh").write_text("#!/bin/sh\n")
    kept.append(forged)
    theirs = base / "theirs"  # the SDK's layout, another user's directory
    theirs.mkdir()
    (theirs / "job.sh").write_text(
        "#!/bin/bash\n# Generated by slurm-sdk: do not edit, it is rewritten on every submission.\n"
    )
    their_env = envs / ("c" * 24)
    (their_env / "venv").mkdir(parents=True)
    (their_env / "ready.json").write_text("{}")
    for path in (theirs, theirs / "job.sh", their_env, their_env / "ready.json"):
        os.chown(path, intruder.pw_uid, intruder.pw_gid)
    kept += [theirs, their_env]
    (cache / "notes.txt").write_text("x" * 5000)  # $SLURM_SDK_CACHE_DIR names a user's directory
    kept.append(cache / "notes.txt")
    for path in kept:
        _age(path, 100)
    return kept


def _fake_sifs(base: Path, live_dir: Path, intruder: pwd.struct_passwd) -> dict[str, list[Path]]:
    """The .sif cache: what prune --images-unused removes and what it must keep."""
    sif = base / ".image-cache" / "sif"
    sif.mkdir(parents=True)

    def image(byte: str, days: float) -> Path:
        path = sif / f"docker-sha256-{byte * 64}.sif"
        path.write_bytes(b"SIF" + byte.encode())
        _age(path, days)
        return path

    unused, half = image("a", 40), sif / f"docker-sha256-{'b' * 64}.sif.tmp-1234"
    half.write_bytes(b"partial")
    _age(half, 3)
    recent, named = image("c", 1), image("d", 40)
    with (live_dir / "job.sh").open("a") as script:  # as the SDK's export of its spec names it
        script.write(f"# {named}\n")
    theirs = image("e", 40)
    os.chown(theirs, intruder.pw_uid, intruder.pw_gid)
    link = sif / f"docker-sha256-{'f' * 64}.sif"
    link.symlink_to(theirs)
    notes = sif / "notes.txt"
    notes.write_text("mine")
    _age(notes, 40)
    return {"removed": [unused, half], "kept": [recent, named, theirs, link, notes]}


def test_prune_reclaims_space_and_keeps_what_is_live(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch, intruder: pwd.struct_passwd
) -> None:
    from jobfuncs import sleep_then

    base, envs, cache = home_tmp / "jobs", home_tmp / "envs", home_tmp / "cache"
    outside = home_tmp / "not-the-sdks"
    outside.mkdir()
    _age(outside, 100)
    with _cluster(base):
        old = add(1, 2)
        old.wait(timeout=120)
        live = sleep_then(120, "late")
        deadline = time.monotonic() + 60
        while live.get_status().value != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
    for directory in (old.job_dir, live.job_dir):
        _age(Path(directory), 30)
    stale = _fake_env(envs, "a" * 24, "1" * 64, used_days_ago=40)
    fresh = _fake_env(envs, "b" * 24, "2" * 64, used_days_ago=1)
    orphan = envs / ".store" / ("3" * 64)
    orphan.mkdir(parents=True)
    monkeypatch.setenv("SLURM_SDK_CACHE_DIR", str(cache))
    (cache / "built").mkdir(parents=True)
    for i, size in enumerate([3000, 2000, 1000]):  # oldest first
        (cache / "built" / f"w{i}.whl").write_bytes(b"x" * size)
        _age(cache / "built" / f"w{i}.whl", 10 - i)
    kept = _not_the_sdks(base, envs, cache, intruder)
    sifs = _fake_sifs(base, Path(live.job_dir), intruder)
    kept += sifs["kept"]
    pruner = _cluster(base, packaging={"type": "wheel", "env_dir": str(envs)})
    try:
        with pruner:
            dry = pruner.prune(
                older_than_days=7,
                env_unused_days=7,
                cache_max_bytes=3000,
                images_unused_days=7,
                dry_run=True,
            )
        assert dry.job_dirs == [old.job_dir] and dry.environments == [str(stale)]
        assert sorted(dry.images) == sorted(str(p) for p in sifs["removed"])
        assert all(p.exists() for p in sifs["removed"])
        assert sorted(dry.wheels) == [str(envs / ".store" / s) for s in ("1" * 64, "3" * 64)]
        assert [Path(p).name for p in dry.cache_files] == ["w0.whl"]
        assert Path(old.job_dir).exists() and stale.exists() and orphan.exists()
        assert "would remove job directory" in dry.render()

        printed = _cli(base, "prune", "--older-than", "7", "--images-unused", "7", "--dry-run")
        assert printed.exit_code == 0 and f"would remove job directory {old.job_dir}" in (
            printed.output
        )
        assert f"would remove image {sifs['removed'][0]}" in printed.output

        with pruner:
            done = pruner.prune(older_than_days=7, env_unused_days=7, cache_max_bytes=3000)
        assert done.job_dirs == [old.job_dir] and not Path(old.job_dir).exists()
        assert not (base / ".index" / old.id).exists()
        assert Path(live.job_dir).exists() and (base / ".index" / live.id).exists()
        assert not stale.exists() and fresh.exists() and not orphan.exists()
        assert (envs / ".store" / ("2" * 64)).exists()
        assert sorted(p.name for p in (cache / "built").iterdir()) == ["w1.whl", "w2.whl"]
        assert outside.exists() and done.images == []  # not asked for: every image stays
        with pruner:
            gone = pruner.prune(older_than_days=7, images_unused_days=7)
        assert sorted(gone.images) == sorted(str(p) for p in sifs["removed"])
        assert [p for p in sifs["removed"] if p.exists()] == []
        assert [p for p in kept if not p.exists()] == []
    finally:
        with _cluster(base) as cluster:
            cluster.cancel([live.id])


# --- hostile strings go through unchanged and are never executed ---------------------------

HOSTILE_STRINGS = [
    "with space",
    "quote'single",
    'quote"double',
    "semi; touch PWNED",
    "$(touch PWNED)",
    "`touch PWNED`",
    "hash # not a comment",
    "ünïcödé ✓ 🚀",
    "back\\slash",
]


def _accounted_names(expected: dict[str, str]) -> dict[str, str]:
    """``{job id: name}`` as accounting recorded these finished jobs, once it equals
    ``expected`` or after a minute: slurmdbd lags the controller, and for a job that has
    just ended sacct may give the name "allocation" for a few seconds."""
    argv = ["sacct", "-X", "-n", "-P", "-j", ",".join(expected), "-o", "JobID,JobName"]
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        names = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        if names == expected or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


def _as_accounted(name: str) -> str:
    """A name as the dev cluster's accounting gives it back: slurmdbd stores ``"`` as a
    backquote, and its database keeps latin-1 (a character beyond it, ✓ or 🚀, reads back
    as ``?``). squeue shows the name whole."""
    return name.replace('"', "`").encode("latin-1", "replace").decode("latin-1")


def _shout() -> Task[..., str]:
    @task(time="00:02:00", mem="64M")
    def shout(value: str) -> str:
        print(value)
        print(value, file=sys.stderr)
        return value

    return shout


def test_hostile_strings_travel_unchanged_and_never_run(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = home_tmp / "jobs"
    monkeypatch.chdir(home_tmp)  # a `touch PWNED` that ran would leave it here
    with _cluster(base):
        jobs = [
            _shout().with_options(job_name=value, constraint=False)(value + "\nsecond line")
            for value in HOSTILE_STRINGS
        ]
        for job, value in zip(jobs, HOSTILE_STRINGS, strict=True):
            assert job.get_result(timeout=120) == value + "\nsecond line"
            assert job.get_stdout() == value + "\nsecond line\n"
            shown = _cli(base, "show", job.id)
            assert shown.exit_code == 0, shown.output
            logs = _cli(base, "logs", job.id)
            assert logs.output == value + "\nsecond line\n"
        # Slurm got each name as given: from accounting, which keeps it after squeue forgets.
        given = {j.id: _as_accounted(v) for j, v in zip(jobs, HOSTILE_STRINGS, strict=True)}
        assert _accounted_names(given) == given
        with pytest.raises(InvalidOptionError, match="newline"):
            _shout().with_options(job_name="new\nline")("x")
    assert not list(home_tmp.rglob("PWNED"))
    assert len(_job_dirs(base)) == len(HOSTILE_STRINGS)


# Every hostile string at once: a workflow's name, and a directory name (so the job base
# directory, the workflow's shared_dir and every path its tasks get as arguments hold it;
# but no backslash, which Slurm strips from --output/--error: such a path is refused).
HOSTILE_ALL = " ".join(HOSTILE_STRINGS)
HOSTILE_DIR = " ".join(s for s in HOSTILE_STRINGS if "\\" not in s)


def test_hostile_strings_through_the_tutorials_workflow(
    devcluster: object, home_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from slurm.examples.parallel_train_eval.workflow import parallel_train_eval_workflow

    base = home_tmp / HOSTILE_DIR / "jobs"
    monkeypatch.chdir(home_tmp)  # a `touch PWNED` that ran would leave it here
    flow_task = parallel_train_eval_workflow.with_options(job_name=HOSTILE_ALL)
    arguments = {"epochs": 1, "epoch_steps": 2, "steps_per_job_cap": 1,
                 "partition_train": None, "partition_eval": None}  # fmt: skip
    slashed = home_tmp / "back\\slash" / "jobs"
    with _cluster(slashed), pytest.raises(InvalidOptionError, match="backslashes"):
        flow_task(**arguments)
    assert _job_dirs(slashed) == []
    with _cluster(base):
        flow = flow_task(**arguments)
        state_path = Path(flow.get_result(timeout=300))
    given = {flow.id: _as_accounted(HOSTILE_ALL)}
    assert _accounted_names(given) == given  # Slurm got the name as given
    shared = Path(flow.job_dir) / "shared"
    assert state_path == shared / "state.json"
    assert str(base) in str(shared)  # the hostile directory, as given
    state = json.loads(state_path.read_text())
    assert state["checkpoints"] == [str(shared / "checkpoints" / "epoch_000.json")]
    assert state["metrics"] == [str(shared / "metrics" / "epoch_000.json")]
    assert state["eval_succeeded"] == {"0": True}
    metrics = json.loads((shared / "metrics" / "epoch_000.json").read_text())
    assert metrics["checkpoint_path"] == state["checkpoints"][0]  # an argument, unchanged
    shown = _cli(base, "show", flow.id)
    assert shown.exit_code == 0 and "COMPLETED" in shown.output, shown.output
    listing = _cli(base, "list")
    assert listing.exit_code == 0, listing.output
    assert not list(home_tmp.rglob("PWNED"))


# --- faults: a truncated result (a full disk: test_faults.py) ----------------------------


def test_truncated_result_is_a_clear_error(devcluster: object, home_tmp: Path) -> None:
    base = home_tmp / "jobs"
    with _cluster(base):
        job = add(20, 22)
        job.wait(timeout=120)
    result = Path(job.job_dir, "result.pkl")
    result.write_bytes(result.read_bytes()[:10])
    with _cluster(base) as cluster, pytest.raises(ResultError, match=r"unreadable.*re-run"):
        cluster.get_job(job.id).get_result(timeout=30)
    outcome = Path(job.job_dir, "result.json")
    outcome.write_text(outcome.read_text()[:15])
    with _cluster(base) as cluster:
        again = cluster.get_job(job.id)
        assert again.get_status().value == "FAILED"
    shown = _cli(base, "show", job.id)
    assert shown.exit_code == 0 and "cannot be read" in shown.output


# --- a result the client does not trust ---------------------------------------------------


class _RunsCode:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.path,))


def test_an_untrusted_result_is_plain_data_or_refused(devcluster: object, home_tmp: Path) -> None:
    """``trusted=False`` against a login node that rewrote a result: the forged pickle is
    refused and nothing in it runs; real plain results and errors still come back."""
    from jobfuncs import fail_with

    marker = home_tmp / "the-forged-result-ran"
    with _cluster(home_tmp / "jobs"):
        job = add(1, 2)
        assert job.get_result(timeout=120, trusted=False) == 3
        failed = fail_with("boom")
        with pytest.raises(TaskFailedError, match="boom"):
            failed.get_result(timeout=120, trusted=False)
        forged = add(2, 2)
        forged.wait(timeout=120)
        result = Path(forged.result_path)
        fields = cloudpickle.loads(result.read_bytes())
        fields["value"] = cloudpickle.dumps(_RunsCode(str(marker)))
        result.write_bytes(cloudpickle.dumps(fields))
        with pytest.raises(ResultError, match="not plain data"):
            forged.get_result(trusted=False)
    assert not marker.exists()
