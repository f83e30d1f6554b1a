"""Ship the own logs of Dagster's long-running processes: the daemon, the webserver, code servers.

These processes log through plain Python loggers (``dagster``, ``dagster.daemon.<Daemon>``,
``dagster.code_server``, ``dagster-webserver``, uvicorn's ``uvicorn`` / ``uvicorn.access``) that
each configures with ``logging.config.dictConfig`` at startup (Dagster's ``configure_loggers``,
uvicorn's ``LOGGING_CONFIG``). ``python_logs`` in ``dagster.yaml`` reaches only the log managers
Dagster builds for runs and evaluations, never these loggers. So the process is wrapped instead:
:func:`run_wrapped` puts one :class:`ProcessLogRelay` on the root logger (which none of those
configurations touch) and on the loggers that do not propagate to it, then runs the wrapped
command's entry point in the same process. Every record is still printed as before; the relay
hands a copy, marked with the process kind, to a shipping handler.

``dictConfig`` replaces the handlers of every logger it configures, so it is wrapped to attach
the relay again afterwards. Child processes Dagster starts with the same Python (``dagster dev``'s
webserver and daemon, the code servers of a workspace) are started wrapped as well, by rewriting
their command line in ``subprocess.Popen``; run workers are not (their events go through the
run's loggers).

Nothing here raises into the wrapped process: a failing relay drops the record, and the wrapped
command's exit status is kept.
"""

from __future__ import annotations

import copy
import importlib.metadata
import logging
import logging.config
import os
import runpy
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EXTRA_LOGGERS",
    "ProcessLogRelay",
    "WrappedCommand",
    "attach",
    "child_command",
    "detach",
    "process_kind_of",
    "resolve_command",
    "wrap_children",
]

#: Loggers that do not propagate to the root logger, so the relay is put on them too.
EXTRA_LOGGERS = ("uvicorn", "uvicorn.access")
#: Module of the ``dagster-logship`` command, run with ``python -m`` in wrapped children.
CLI_MODULE = "dagster_logship.cli"


class CommandError(ValueError):
    """The command after ``--`` cannot be run in this process (the CLI exits with status 2)."""


# -- which process ------------------------------------------------------------------------------


def _words(argv: Sequence[str]) -> list[str]:
    """The command's words with the interpreter and ``-m`` removed: ``dagster api grpc``."""
    words = list(argv)
    if len(words) >= 3 and _is_python(words[0]) and words[1] == "-m":
        words = words[2:]
    elif words:
        words[0] = os.path.basename(words[0])
    return words


def process_kind_of(argv: Sequence[str]) -> str:
    """``daemon``, ``webserver``, ``code-server``, ``dev`` or the command's name, from its words.

    Says which Dagster process the events come from (the ``process_kind`` field), recognized as
    the console scripts and as the ``python -m`` forms Dagster itself starts children with.
    """
    words = _words(argv)
    if not words:
        return "process"
    head = words[0]
    if head in ("dagster-daemon", "dagster._daemon"):
        return "daemon"
    if head in ("dagster-webserver", "dagster_webserver", "dagit"):
        return "webserver"
    if head == "dagster" and len(words) > 1:
        sub = words[1:3]
        if sub[:1] == ["code-server"] or sub == ["api", "grpc"]:
            return "code-server"
        if sub[:1] == ["dev"]:
            return "dev"
    if head.endswith(".py"):
        head = head[:-3]
    return head or "process"


# -- the relay ----------------------------------------------------------------------------------


class ProcessLogRelay(logging.Handler):
    """Hands a copy of each record, marked with the process kind, to ``target``.

    A copy, so that the console handlers (some of which print every attribute, such as Dagster's
    ``--log-format json``) keep printing what they printed. It sits on the root logger, so its
    presence would stop ``logging.lastResort`` from printing WARNING and above of loggers with no
    handler of their own; it prints those itself, as ``logging`` would have without it.
    """

    def __init__(self, target: logging.Handler, process_kind: str, level: int = logging.NOTSET):
        super().__init__(level)
        self.target = target
        self.process_kind = process_kind

    def emit(self, record: logging.LogRecord) -> None:
        try:
            shipped = copy.copy(record)
            shipped.process_kind = self.process_kind
            if record.name.startswith("dagster.daemon."):
                # get_default_daemon_logger names each daemon's logger after its class.
                shipped.daemon = record.name.split(".", 3)[2]
            self.target.handle(shipped)
        except Exception:
            pass
        with suppress(Exception):
            self._last_resort(record)

    def _last_resort(self, record: logging.LogRecord) -> None:
        """Print what ``logging`` would have printed had this relay not been there."""
        last = logging.lastResort
        if last is None or record.levelno < last.level:
            return
        found = logging.Logger.manager.loggerDict.get(record.name)
        if not isinstance(found, logging.Logger):
            return
        node: logging.Logger | None = found
        while node is not None:
            if any(h is not self for h in node.handlers):
                return
            node = node.parent if node.propagate else None
        last.handle(record)

    def handle(self, record: logging.LogRecord) -> Any:
        # No lock: the target has its own, and a relay's lock held across it is only a risk.
        rv = self.filter(record)
        if rv:
            self.emit(record)
        return rv

    def close(self) -> None:
        # dictConfig and logging.shutdown close every handler; the target survives closing
        # (it reopens), and so does the relay.
        pass


_state_lock = threading.RLock()
_relays: list[ProcessLogRelay] = []
_original_dict_config: Callable[..., Any] | None = None
_original_file_config: Callable[..., Any] | None = None


def _place(relay: ProcessLogRelay) -> None:
    """Put ``relay`` on the root logger and on the non-propagating loggers, once each."""
    targets = [logging.getLogger(), *(logging.getLogger(n) for n in EXTRA_LOGGERS)]
    for lg in targets:
        if lg is not targets[0] and lg.propagate:
            if relay in lg.handlers:
                lg.removeHandler(relay)  # it propagates again: the root's copy sees it
            continue
        if relay not in lg.handlers:
            lg.addHandler(relay)


def _reattach() -> None:
    with _state_lock:
        for relay in _relays:
            _place(relay)


def _patched_dict_config(config: Any) -> None:
    assert _original_dict_config is not None
    try:
        _original_dict_config(config)
    finally:
        _reattach()


def _patched_file_config(*args: Any, **kwargs: Any) -> None:
    assert _original_file_config is not None
    try:
        _original_file_config(*args, **kwargs)
    finally:
        _reattach()


def attach(relay: ProcessLogRelay) -> None:
    """Start relaying: the relay on the root (and non-propagating) loggers, kept there when
    ``logging.config.dictConfig`` / ``fileConfig`` reconfigure them."""
    global _original_dict_config, _original_file_config
    with _state_lock:
        if relay not in _relays:
            _relays.append(relay)
        if _original_dict_config is None:
            _original_dict_config = logging.config.dictConfig
            _original_file_config = logging.config.fileConfig
            logging.config.dictConfig = _patched_dict_config
            logging.config.fileConfig = _patched_file_config
        _place(relay)


def detach(relay: ProcessLogRelay) -> None:
    """Stop relaying (the configuration functions are restored with the last relay)."""
    global _original_dict_config, _original_file_config
    with _state_lock:
        if relay in _relays:
            _relays.remove(relay)
        for name in (None, *EXTRA_LOGGERS):
            logging.getLogger(name).removeHandler(relay)
        if not _relays and _original_dict_config is not None:
            logging.config.dictConfig = _original_dict_config
            logging.config.fileConfig = _original_file_config  # type: ignore[assignment]
            _original_dict_config = _original_file_config = None


# -- child processes ----------------------------------------------------------------------------


def _is_python(path: str) -> bool:
    if not path:
        return False
    if path == sys.executable:
        return True
    name = os.path.basename(path)
    return name.startswith("python") and not name.endswith((".py", "-config"))


def _same_python(path: str) -> bool:
    """Whether ``path`` (or the ``python`` found on PATH) is this interpreter."""
    if path == sys.executable:
        return True
    try:
        found = path if os.sep in path else shutil.which(path)
        if not found:
            return False
        return os.path.abspath(found) == os.path.abspath(sys.executable) or (
            os.path.realpath(found) == os.path.realpath(sys.executable))
    except (OSError, ValueError):
        return False


def child_command(args: Any, wrapper_flags: Sequence[str]) -> list[str] | None:
    """The command line that starts a Dagster server child wrapped, or None to leave it alone.

    Only the forms Dagster itself uses, with this process's own Python: ``python -m
    dagster_webserver``, ``python -m dagster._daemon``, ``python -m dagster api grpc`` and
    ``python -m dagster code-server start``. Run workers and step processes are not wrapped.
    """
    if isinstance(args, (str, bytes, os.PathLike)) or not isinstance(args, (list, tuple)):
        return None
    if not all(isinstance(a, str) for a in args) or len(args) < 3:
        return None
    if args[1] != "-m" or not _same_python(args[0]):
        return None
    if process_kind_of(args) not in ("daemon", "webserver", "code-server"):
        return None
    return [args[0], "-m", CLI_MODULE, "run", *wrapper_flags, "--", *args]


@contextmanager
def wrap_children(wrapper_flags: Sequence[str]) -> Iterator[None]:
    """While inside, Dagster server children started with ``subprocess.Popen`` are started as
    ``python -m dagster_logship.cli run FLAGS -- <their command>``."""
    original = subprocess.Popen.__init__
    flags = list(wrapper_flags)

    def init(self: Any, args: Any = None, *rest: Any, **kwargs: Any) -> None:
        if args is None and "args" in kwargs:
            args = kwargs.pop("args")
        try:
            wrapped = child_command(args, flags) if not kwargs.get("shell") else None
        except Exception:
            wrapped = None
        original(self, wrapped or args, *rest, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]


# -- running the wrapped command ----------------------------------------------------------------


@dataclass(frozen=True)
class WrappedCommand:
    """How to run the command after ``--`` in this process."""

    argv: list[str]
    #: what ``sys.argv`` becomes while it runs
    sys_argv: list[str]
    run: Callable[[], Any]
    describe: str


def _console_script(name: str) -> importlib.metadata.EntryPoint | None:
    found = importlib.metadata.entry_points(group="console_scripts", name=name)
    return next(iter(found), None)


def resolve_command(argv: Sequence[str]) -> WrappedCommand:
    """Find the entry point of ``argv``: a console script of this environment (``dagster-daemon
    run``), ``python -m MODULE ...`` or ``python SCRIPT.py ...``; ``CommandError`` otherwise."""
    argv = list(argv)
    if not argv:
        raise CommandError("no command after --: give the command to run, such as "
                           "`-- dagster-daemon run`")
    head = argv[0]
    if _is_python(head):
        if len(argv) >= 3 and argv[1] == "-m":
            module = argv[2]
            if not _same_python(head):
                raise CommandError(f"{head} is not this Python ({sys.executable}): the command "
                                   "runs inside this process, so give it with this Python")
            try:
                import importlib.util

                if importlib.util.find_spec(module) is None:
                    raise ImportError(module)
            except (ImportError, ValueError):
                raise CommandError(f"no module named {module!r} in this Python "
                                   f"({sys.executable})") from None

            def run_module() -> Any:
                return runpy.run_module(module, run_name="__main__", alter_sys=True)

            return WrappedCommand(argv, [module, *argv[3:]], run_module, f"python -m {module}")
        if len(argv) >= 2 and argv[1].endswith(".py"):
            script = argv[1]
            if not os.path.isfile(script):
                raise CommandError(f"{script}: no such file")

            def run_script() -> Any:
                return runpy.run_path(script, run_name="__main__")

            return WrappedCommand(argv, [script, *argv[2:]], run_script, f"python {script}")
        raise CommandError(f"`{' '.join(argv[:2])}`: give `python -m MODULE ...` or "
                           "`python SCRIPT.py ...` (other interpreter options are not supported)")
    name = os.path.basename(head)
    entry = _console_script(name)
    if entry is None:
        raise CommandError(
            f"{name!r} is not a console script of this Python environment ({sys.executable}): "
            "the command runs inside this process, so install it here (dagster-daemon, "
            "dagster-webserver, dagster are), or give `python -m MODULE ...`"
        )
    try:
        func = entry.load()
    except Exception as exc:
        raise CommandError(f"cannot load {name!r} ({entry.value}): {type(exc).__name__}: "
                           f"{exc}") from None
    return WrappedCommand(argv, [head, *argv[1:]], func, name)
