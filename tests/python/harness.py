"""What the binding's test drivers share: paths from the environment CTest sets, configs, and
mpirun with a timeout that reports every rank's exit code and output.

Environment (tests/python/CMakeLists.txt): FEDSILO_TEST_BIN (the fedsilo command),
FEDSILO_TEST_MPIEXEC (the launcher, space-separated), FEDSILO_TEST_DIR (scratch space),
FEDSILO_TEST_SILOS (the partitions' parent folder), PYTHONPATH (BUILD/python).
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = sys.executable  # the interpreter with torch that runs this driver runs the ranks too
FEDSILO = os.environ["FEDSILO_TEST_BIN"]
MPIEXEC = shlex.split(os.environ["FEDSILO_TEST_MPIEXEC"])
WORK = os.environ["FEDSILO_TEST_DIR"]
SILOS = os.environ["FEDSILO_TEST_SILOS"]


def silos(n):
    """The fixture's partition with n silos (fedsilo partition, Fashion-MNIST subset)."""
    return os.path.join(SILOS, "silos%d" % n)


def fresh_dir(name):
    """An empty scratch folder for one test (each test has its own: ctest -j runs them together)."""
    path = os.path.join(WORK, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_config(folder, silos_dir, rounds, arch="pytorch", extra=""):
    """FOLDER/job.toml: a small federation whose run directory is FOLDER/run, checkpointed every
    round; `extra` is more TOML (whole tables)."""
    text = ('[run]\nname = "pytest"\nseed = 7\nrounds = %d\nout_dir = "%s"\ncheckpoint_every = 1\n'
            '[data]\nsilos_dir = "%s"\n[model]\narch = "%s"\n%s'
            '[local]\nepochs = 1\nbatch_size = 32\nlr = 0.05\nmomentum = 0.9\n%s'
            % (rounds, os.path.join(folder, "run"), silos_dir, arch,
               "hidden = [32]\n" if arch == "mlp" else "", extra))
    path = os.path.join(folder, "job.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Ranks:
    """The outcome of one mpirun: each rank's exit code and combined stdout/stderr."""

    def __init__(self, codes, outputs, launcher):
        self.codes, self.outputs, self.launcher = codes, outputs, launcher

    def describe(self):
        parts = ["mpirun: %s" % self.launcher.strip()]
        for r, (c, o) in enumerate(zip(self.codes, self.outputs)):
            parts.append("---- rank %d exit %s\n%s" % (r, c, o.rstrip()))
        return "\n".join(parts)


def mpirun(np, argv, tag, env=None, timeout=120):
    """Runs argv on np ranks; every rank's output goes to its own file and its exit code is
    recorded (a rank's failure does not make mpirun kill the others: each must stop on its own,
    which is what the tests check). A run past `timeout` is killed and fails the test."""
    logs = fresh_dir(os.path.join("logs", tag))
    rank = shlex.quote(logs) + "/%s.$OMPI_COMM_WORLD_RANK"
    # sh per rank: the command in the background (its pid recorded, to kill it on a timeout),
    # its output to a file, its exit code to another.
    wrapped = ["sh", "-c", '"$@" >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s'
               % (rank % "out", rank % "pid", rank % "rc"), "sh"] + list(argv)
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.Popen(MPIEXEC + ["-np", str(np)] + wrapped, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=full_env)
    try:
        launcher, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for r in range(np):  # the ranks' processes, then mpirun (which then has nothing to wait for)
            pid = _read(os.path.join(logs, "pid.%d" % r)).strip()
            if pid:
                _kill(int(pid))
        _kill(proc.pid)
        launcher, _ = proc.communicate()
        outputs = [_read(os.path.join(logs, "out.%d" % r)) for r in range(np)]
        raise AssertionError("%s: no result after %d s (a hang)\n%s" %
                             (tag, timeout, Ranks([None] * np, outputs, launcher).describe()))
    codes, outputs = [], []
    for r in range(np):
        rc = _read(os.path.join(logs, "rc.%d" % r)).strip()
        codes.append(int(rc) if rc else None)
        outputs.append(_read(os.path.join(logs, "out.%d" % r)))
    return Ranks(codes, outputs, launcher)


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def torch_ranks(np, script, args, tag, env=None, timeout=120):
    """A script of this folder on np ranks, one thread each (2 cores, ranks oversubscribed)."""
    return mpirun(np, [PYTHON, os.path.join(HERE, script)] + list(args), tag,
                  env=dict({"OMP_NUM_THREADS": "1"}, **(env or {})), timeout=timeout)


def fedsilo(*args, timeout=60):
    """The fedsilo command (one process): (exit code, stdout + stderr)."""
    p = subprocess.run([FEDSILO] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout


def expect(cond, message, ranks=None):
    if not cond:
        raise AssertionError(message + ("\n" + ranks.describe() if ranks is not None else ""))


def expect_success(ranks, what):
    expect(all(c == 0 for c in ranks.codes), "%s: every rank should exit 0" % what, ranks)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def main(test):
    """Runs test() and turns an AssertionError into a one-paragraph failure (exit 1)."""
    try:
        test()
    except AssertionError as e:
        print("FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)
    print("passed")
