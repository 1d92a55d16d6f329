"""fedsilo.torch: train your own PyTorch model through fedsilo.

Each MPI rank is one silo; the training loop is yours, the rest is fedsilo's::

    import fedsilo.torch as fl
    with fl.Federation("job.toml") as fed:
        model = MyNet()
        opt = torch.optim.SGD(model.parameters(), lr=fed.local["lr"])
        fed.start(model)                 # one flat buffer; fresh: rank 0's weights, resume: the checkpoint's
        fed.register_state(opt)          # checkpointed with the silo's private state
        for rnd in fed.rounds():         # resume-aware; SIGUSR1: checkpoint, exit 5 (requeue)
            torch.manual_seed(fed.seed(rnd))
            loss = train_one_round(model, opt, fed.silo.train)
            fed.aggregate(model, num_examples=len(fed.silo.train))
            fed.log(loss=loss)
        fed.finish(model)                # model.h5 and model.pt in the run directory

Every collective call first agrees on each rank's outcome, and the context manager reports an
exception raised on one rank to the others, so every rank stops with the same message and
fedsilo's exit code instead of hanging.
"""

import atexit
import contextlib
import io
import os
import sys
import weakref

import numpy as np
import torch

from . import FederationError
from . import _core

__all__ = ["Federation", "FederationError", "SiloData", "Silo"]

_OPEN = weakref.WeakSet()  # federations not yet closed (for the last-resort abort at exit)


def _usage(error):
    """The exit code of a call the caller got wrong (as fedsilo's usage errors: 2), 0 for none."""
    return _core.EXIT_USAGE if error else 0


def _on_device_of(tensor):
    """The tensor's CUDA device made current for a block, the caller's restored after it: fedsilo
    sets the device it works on for the calling thread, which torch shares. A no-op on the CPU."""
    if tensor.device.type == "cuda":
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def _agreed(outcome):
    """Raises FederationError for an agreed (exit code, message) that is not success."""
    code, message = outcome
    if code != 0:
        err = FederationError(message, code)
        err.fedsilo_agreed = True
        raise err


class SiloData:
    """One HDF5 split of a silo as tensors: ``x`` float32 [N, C, H, W], ``y`` int64 [N]."""

    def __init__(self, x, y, num_classes):
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y.astype(np.int64))
        self.num_classes = num_classes

    def __len__(self):
        return int(self.y.shape[0])


def _read(path):
    outcome, x, y, classes = _core.read_dataset(path)
    code, message = outcome
    if code != 0:
        raise FederationError(message, code)
    return x, y, classes


class Silo:
    """This rank's silo: its name, data directory, private directory and data as tensors."""

    def __init__(self, session):
        self._s = session
        self.name = session.silo_name
        self.index = session.rank
        self.data_dir = session.silo_dir
        self.private_dir = session.private_dir
        self._cache = {}

    def _split(self, which):
        if which not in self._cache:
            self._cache[which] = SiloData(*_read(os.path.join(self.data_dir, which + ".h5")))
        return self._cache[which]

    @property
    def train(self):
        """The silo's training records (train.h5)."""
        return self._split("train")

    @property
    def test(self):
        """The silo's own test split (test.h5)."""
        return self._split("test")

    @property
    def global_test(self):
        """This rank's share of the global test split (data.test_file): rank r of P holds
        samples [n r / P, n (r + 1) / P), as ``fedsilo train`` evaluates it."""
        if "global" not in self._cache:
            x, y, classes = _read(self._s.test_file)
            n, r, p = len(y), self._s.rank, self._s.size
            lo, hi = n * r // p, n * (r + 1) // p
            self._cache["global"] = SiloData(np.ascontiguousarray(x[lo:hi]), y[lo:hi], classes)
        return self._cache["global"]


class Federation:
    """This rank's silo in a federation run by ``config`` (a fedsilo TOML file).

    ``resume``: continue from the newest complete checkpoint (None: when the environment sets
    FEDSILO_RESUME=1, as the job script of ``fedsilo slurm`` does). ``overwrite``: replace a run
    in run.out_dir. The config is validated as for ``fedsilo train``; model.arch is "pytorch"
    for a network of your own, or a built-in arch your network reproduces tensor for tensor
    (then ``fedsilo eval`` reads model.h5).
    """

    def __init__(self, config, resume=None, overwrite=False, progress=True):
        if resume is None:
            resume = os.environ.get("FEDSILO_RESUME", "") not in ("", "0")
        outcome, session = _core.Session.open(str(config), bool(resume), bool(overwrite), bool(progress))
        _agreed(outcome)
        self._s = session
        self.rank = session.rank
        self.size = session.size
        self.silo = Silo(session)
        self.run_dir = session.run_dir
        self.local = dict(session.local)  # [local] of the config: epochs, batch_size, lr, ...
        self.strategy = session.strategy
        self.mu = session.mu
        self._params = None   # [(name, parameter, offset, numel)] after start()
        self._flat = None     # the flat buffer every parameter is a view of
        self._global = None   # the global model of the round in flight (FedProx's anchor)
        self._states = {}     # name -> object with state_dict()/load_state_dict()
        self._restored = {}   # name -> state_dict restored from the checkpoint
        self._round = None
        self._correction = None  # SCAFFOLD: c - c_s of the round in flight
        self._log = {}
        self._due = False
        self._done = False
        self._closed = False
        _OPEN.add(self)

    # ---- context manager: an exception on one rank stops every rank with its message
    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            # Every rank leaves the block through one last agreement: a rank that raised after
            # its last collective call (after finish) waits in it, not alone while the others
            # finalize MPI.
            code, message = self._s.fail(0, "") if not self._closed else (0, "")
            self.close()
            if code != 0:
                print("fedsilo: error: %s" % message, file=sys.stderr, flush=True)
                raise SystemExit(code)
            return False
        agreed = getattr(value, "fedsilo_agreed", False)
        if not agreed and not self._closed:
            # This rank failed between calls: tell the others (they are waiting in, or will
            # reach, a collective call that begins with the same agreement).
            message = "rank %d (%s): %s: %s" % (self.rank, self.silo.name, kind.__name__, value)
            try:
                self._s.fail(1, message)
            except Exception:  # pragma: no cover - the agreement itself failed: last resort
                _core.abort(1)
            agreed = True
        self.close()
        if isinstance(value, FederationError):
            # The agreed error: every rank prints it and exits with fedsilo's code for it.
            print("fedsilo: error: %s" % value, file=sys.stderr, flush=True)
            raise SystemExit(value.exit_code)
        return False  # this rank's own exception (or SystemExit) propagates

    def close(self):
        """Ends this rank's part (MPI itself is finalised at interpreter exit)."""
        self._closed = True
        _OPEN.discard(self)

    # ---- the model
    def start(self, model):
        """Moves every parameter of ``model`` into one flat float32 buffer (the parameters become
        views of it, so an optimizer built before ``start`` keeps working), then: fresh run,
        rank 0's values on every rank; resume, the checkpoint's values and registered state.
        Collective."""
        error = None
        if self._params is not None:
            error = "start() was called twice"
        named = [] if error else list(model.named_parameters())
        for name, p in named:
            if p.dtype != torch.float32:
                error = ("parameter %s is %s: fedsilo federates float32 parameters (call model.float() "
                         "before start)" % (name, p.dtype))
                break
        devices = {p.device for _, p in named}
        if error is None and len(devices) > 1:
            error = "the model's parameters are on several devices (%s)" % ", ".join(map(str, devices))
        device = devices.pop() if devices else torch.device("cpu")
        total = sum(p.numel() for _, p in named)
        with torch.no_grad():
            flat = torch.zeros(total, dtype=torch.float32, device=device)
            params, offset = [], 0
            if error is None:
                for name, p in named:
                    n = p.numel()
                    flat[offset:offset + n].copy_(p.detach().reshape(-1))
                    p.data = flat[offset:offset + n].view_as(p)
                    params.append((name, p, offset, n))
                    offset += n
        host = self._host(flat)
        # Parameters on a GPU: where every rank's are, the rounds sum on the devices
        # (self._s.device_sum), else through host memory.
        cuda_device = flat.device.index if flat.device.type == "cuda" else -1
        if cuda_device is None:
            cuda_device = torch.cuda.current_device()
        # fedsilo sets the CUDA device it sums on for this thread; torch.cuda.device puts the
        # caller's current device back afterwards (as in aggregate()).
        with _on_device_of(flat):
            outcome, state = self._s.start(_usage(error), error or "", host.numpy(),
                                           [name for name, *_ in params],
                                           [list(p.shape) for _, p, *_ in params], cuda_device)
        _agreed(outcome)
        self._params, self._flat = params, flat
        self._model = model
        if flat.device.type != "cpu":
            with torch.no_grad():
                flat.copy_(host)
        if self.strategy == "fedprox":
            self._global = flat.detach().clone()
        if state:
            self._restored = torch.load(io.BytesIO(state), map_location="cpu")
            for name, obj in self._states.items():
                self._load_state(name, obj)

    def _host(self, flat):
        """The buffer as a CPU tensor sharing memory where it is on the CPU (a copy where not)."""
        return flat if flat.device.type == "cpu" else flat.detach().cpu()

    def register_state(self, obj, name=None):
        """Checkpoints ``obj.state_dict()`` (an optimizer, a scheduler, a scaler) with the silo's
        private state at every checkpoint and restores it on resume (before or after start)."""
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError("register_state: %r has no state_dict()/load_state_dict()" % (obj,))
        name = name or "%s.%d" % (type(obj).__name__, len(self._states))
        self._states[name] = obj
        self._load_state(name, obj)

    def _load_state(self, name, obj):
        if name in self._restored:
            obj.load_state_dict(self._restored.pop(name))

    # ---- rounds
    @property
    def start_round(self):
        """The last round completed before this process started (0 on a fresh run)."""
        return self._s.start_round

    @property
    def num_rounds(self):
        return self._s.rounds

    def sampled(self, rnd):
        """Whether this silo trains in round ``rnd`` (strategy.fraction < 1 samples silos)."""
        return self._s.sampled(rnd)

    def seed(self, rnd):
        """A seed for round ``rnd``'s randomness on this silo (from run.seed, the round and the
        silo): ``torch.manual_seed(fed.seed(rnd))`` makes a run and its resume equal."""
        return self._s.seed(rnd)

    def eval_due(self, rnd):
        """eval.every of the config: whether round ``rnd`` is one to evaluate (and the last)."""
        return rnd % self._s.eval_every == 0 or rnd == self._s.rounds

    def rounds(self):
        """The rounds still to run (after the checkpoint on resume). The end of each round
        writes the metrics line and, where due, the checkpoint; after SIGUSR1 it exits with
        code 5 (the job requeues), after SIGTERM with code 7. Collective."""
        if self._params is None:
            self._fail_local("rounds() before start(model)")
        for rnd in range(self._s.start_round + 1, self._s.rounds + 1):
            self._round, self._log, self._due, self._aggregated = rnd, {}, False, False
            if self.strategy == "scaffold":
                # c - c_s for this round's local steps, where the parameters live.
                self._correction = torch.from_numpy(self._s.correction()).to(self._flat.device)
            yield rnd
            if self._restored:
                # Registered state the checkpoint holds but no register_state() claimed by the
                # end of the first resumed round: the run goes on without it (say so, once).
                print("fedsilo: warning: %s: the checkpoint holds state %s that no register_state() "
                      "call restored; it is dropped" % (self.silo.name, ", ".join(sorted(self._restored))),
                      file=sys.stderr, flush=True)
                self._restored = {}
            state, error = b"", None
            if self._due and self._states:
                try:
                    buf = io.BytesIO()
                    torch.save({name: obj.state_dict() for name, obj in self._states.items()}, buf)
                    state = buf.getvalue()
                except Exception as e:  # noqa: BLE001 - reported to every rank
                    error = "registered state: %s: %s" % (type(e).__name__, e)
            outcome = self._s.end_round(1 if error else 0, error or "", rnd, self._log, state)
            self._round = None
            if outcome[0] in (_core.EXIT_REQUEUE, _core.EXIT_CANCELLED):
                # Every rank checkpointed this round: the job script requeues (5) or the user
                # resumes (7) with FEDSILO_RESUME=1.
                if self.rank == 0:
                    print("fedsilo: %s" % outcome[1], file=sys.stderr, flush=True)
                self.close()
                stop = SystemExit(outcome[0])
                stop.fedsilo_agreed = True
                raise stop
            _agreed(outcome)
        self._done = True

    def aggregate(self, model, num_examples, steps=0, lr=None, momentum=None):
        """This silo's update (its parameters minus the round's global model, weighted by
        ``num_examples``) joins the federation's exchange and server step; the model's
        parameters become the new global model, in place. Collective.

        SCAFFOLD and FedNova also need what the local training did: ``steps``, the optimizer
        steps it took this round, and its ``lr`` and ``momentum`` (default: local.lr and
        local.momentum of the config). SCAFFOLD moves the silo's control variate with them
        (c_s+ = c_s - c + (w - y) / (steps lr)); FedNova normalizes the update by
        a_s = (steps - momentum (1 - momentum^steps) / (1 - momentum)) / (1 - momentum)."""
        error = None
        if self._params is None:
            error = "aggregate() before start(model)"
        elif self._round is None:
            error = "aggregate() outside a round of fed.rounds()"
        elif model is not self._model:
            error = "aggregate() got another model than start()"
        else:
            for name, p, offset, n in self._params:
                if p.data_ptr() != self._flat[offset:offset + n].data_ptr():
                    error = ("parameter %s no longer lives in the federation's buffer (was its .data "
                             "replaced after start?)" % name)
                    break
        try:
            weight = float(num_examples)
        except (TypeError, ValueError):
            error, weight = error or "num_examples must be a number, got %r" % (num_examples,), 0.0
        flat = self._flat if self._flat is not None else torch.zeros(0)
        with torch.no_grad():
            lr = self.local["lr"] if lr is None else lr
            momentum = self.local["momentum"] if momentum is None else momentum
            try:
                steps, lr, momentum = int(steps), float(lr), float(momentum)
            except (TypeError, ValueError):
                error = error or ("steps, lr and momentum must be numbers, got %r, %r, %r"
                                  % (steps, lr, momentum))
                steps, lr, momentum = 0, 0.0, 0.0
            if self._s.device_sum:
                # The update is formed and summed in the GPU's memory; the new global model
                # is written into the buffer in place. fedsilo's CUDA work is not ordered
                # after torch's streams: the training's work on the buffer must be done first.
                torch.cuda.synchronize(flat.device)
                with _on_device_of(flat):
                    outcome, due = self._s.aggregate_device(_usage(error), error or "",
                                                            self._round or 0, flat.data_ptr(),
                                                            flat.numel(), weight, steps, lr,
                                                            momentum)
                _agreed(outcome)
            else:
                host = self._host(flat)
                outcome, due = self._s.aggregate(_usage(error), error or "", self._round or 0,
                                                 host.numpy(), weight, steps, lr, momentum)
                _agreed(outcome)
                if flat.device.type != "cpu":
                    flat.copy_(host)
            if self._global is not None:
                self._global.copy_(flat)
        self._due = due

    def log(self, loss=None, test_accuracy=None, test_loss=None, **values):
        """Values of this round for metrics.jsonl: ``loss`` (training), ``test_accuracy`` and
        ``test_loss`` (the silo's own test split) as ``fedsilo train`` reports them (kept in the
        silo's private directory under secure aggregation); any other named number goes only to
        the silo's private metrics.jsonl."""
        if self._round is None:
            raise FederationError("log() outside a round of fed.rounds()", _core.EXIT_USAGE)
        for key, v in dict(values, loss=loss, test_accuracy=test_accuracy, test_loss=test_loss).items():
            if v is None:
                continue
            if torch.is_tensor(v):
                v = v.item()
            if key.startswith("_"):
                raise FederationError("log(): %s: names starting with _ are fedsilo's" % key, _core.EXIT_USAGE)
            self._log[key] = float(v)

    def evaluate(self, model, batch_size=1000, loss_fn=None):
        """Scores ``model`` (the global model, after aggregate) on this rank's share of the global
        test split (summed over ranks into the round's ``accuracy`` and ``loss``) and on the
        silo's own test split (logged as test_accuracy / test_loss). Returns the own scores."""
        loss_fn = loss_fn or torch.nn.functional.cross_entropy
        device = self._flat.device if self._flat is not None else torch.device("cpu")
        was_training = model.training
        model.eval()
        scores = []
        with torch.no_grad():
            for data in (self.silo.global_test, self.silo.test):
                correct, loss_sum = 0.0, 0.0
                for i in range(0, len(data), batch_size):
                    x = data.x[i:i + batch_size].to(device)
                    y = data.y[i:i + batch_size].to(device)
                    out = model(x)
                    loss_sum += float(loss_fn(out, y, reduction="sum"))
                    correct += float((out.argmax(1) == y).sum())
                scores.append((correct, loss_sum, float(len(data))))
        model.train(was_training)
        (gc, gl, gn), (oc, ol, on) = scores
        if self._round is not None:
            self._log.update(_global_correct=gc, _global_loss_sum=gl, _global_count=gn)
            self._log.update(test_accuracy=oc / on, test_loss=ol / on)
        return oc / on, ol / on

    def proximal_term(self, model):
        """FedProx's mu/2 ||w - w_global||^2 (strategy.mu of the config): add it to the loss of
        every local step (Li et al. 2020; ``fedsilo train``'s FedProx adds its gradient)."""
        if self._global is None:
            raise FederationError("proximal_term() needs strategy.name = \"fedprox\" and start(model)",
                                  _core.EXIT_USAGE)
        total = 0.0
        for _, p, offset, n in self._params:
            anchor = self._global[offset:offset + n].view_as(p)
            total = total + ((p - anchor) ** 2).sum()
        return 0.5 * self.mu * total

    def scaffold_correction(self, lr=None):
        """SCAFFOLD's correction (Karimireddy et al. 2020): call it after every optimizer step
        of the round's local training; it moves every parameter by -lr (c - c_s), the server's
        control variate minus the silo's, as ``fedsilo train`` does after each momentum SGD
        step. ``lr`` defaults to local.lr; pass the optimizer's. Then give
        ``aggregate(..., steps=K, lr=lr)`` the number of steps taken."""
        if self.strategy != "scaffold" or self._round is None:
            raise FederationError("scaffold_correction() needs strategy.name = \"scaffold\" and a "
                                  "round of fed.rounds()", _core.EXIT_USAGE)
        lr = self.local["lr"] if lr is None else float(lr)
        with torch.no_grad():
            self._flat.sub_(self._correction, alpha=lr)

    def finish(self, model):
        """Writes the final model: model.h5 (fedsilo's format; ``fedsilo inspect`` reads it, and
        ``fedsilo eval`` where model.arch is built in) and model.pt (its PyTorch state_dict), both
        atomically, on rank 0. Collective."""
        error = None
        if self._params is None:
            error = "finish() before start(model)"
        elif not self._done and not self._s.finished:
            error = "finish() before the last round"
        code = _usage(error)
        if error is None and self.rank == 0 and not self._s.finished:
            path = os.path.join(self.run_dir, "model.pt")
            try:
                torch.save(model.state_dict(), path + ".tmp")
                os.replace(path + ".tmp", path)
            except Exception as e:  # noqa: BLE001 - reported to every rank
                error, code = "%s: %s: %s" % (path, type(e).__name__, e), _core.EXIT_ERROR
        flat = self._flat if self._flat is not None else torch.zeros(0)
        _agreed(self._s.finish(code, error or "", self._host(flat).numpy()))

    def _fail_local(self, message):
        raise FederationError(message, _core.EXIT_USAGE)


# ---- last resort: an exception that escaped outside the context manager while a federation
# was open would leave the other ranks waiting: stop the whole job.
_previous_hook = sys.excepthook


def _excepthook(kind, value, tb):
    if getattr(value, "fedsilo_agreed", False) and isinstance(value, FederationError):
        # Every rank has this error: one line each (no traceback), fedsilo's exit code.
        print("fedsilo: error: %s" % value, file=sys.stderr, flush=True)
        sys.stdout.flush()
        _core.shutdown()
        os._exit(value.exit_code)
    _previous_hook(kind, value, tb)
    if any(not f._closed for f in list(_OPEN)) and not getattr(value, "fedsilo_agreed", False):
        print("fedsilo: an exception escaped a federation outside its `with` block: MPI_Abort",
              file=sys.stderr, flush=True)
        _core.abort(1)


sys.excepthook = _excepthook
atexit.register(_core.shutdown)
