"""Slurm tasks at submit: their `slurm` spec checked field by field, the label that sends them
only to agents that can submit to Slurm, and a job array expanded into one task per element.

An array `simulate` with `array = "1-8"` becomes the tasks `simulate[1]` … `simulate[8]`, each
submitted as a one-element array (`sbatch --array=N`), so the script sees SLURM_ARRAY_TASK_ID
as usual while jobplane follows, retries and cancels each element on its own.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..errors import InvalidArgument
from .model import SlurmSpec, TaskSpec

# What an agent that can submit to Slurm advertises (jobplane-agent --slurm), and a Slurm
# task requires.
LABEL, LABEL_VALUE = "slurm", "true"
# sbatch options jobplane sets itself; a task must not give them again.
RESERVED_OPTIONS = ("--parsable", "--job-name", "-J", "--output", "-o", "--error", "-e", "--array", "-a",
                    "--wrap", "--chdir", "-D")
MAX_INDEX = 4_000_000  # Slurm's own limit on an array index (MaxArraySize - 1 at most)
MAX_TEXT = 1024

_TIME = re.compile(r"(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2}|UNLIMITED|INFINITE)")
_MEM = re.compile(r"\d+[KMGT]?")
_NAME = re.compile(r"[A-Za-z0-9_.,+-]+")
_ARRAY_ITEM = re.compile(r"(\d+)(?:-(\d+)(?::(\d+))?)?")


def check_slurm(path: str, task: TaskSpec) -> TaskSpec:
    """The task with its Slurm spec checked and the slurm=true label required; raises
    InvalidArgument naming the field (`path` is the task's, e.g. `spec.tasks[0]`)."""
    spec = task.slurm
    assert spec is not None
    where = f"{path}.slurm"
    if bool(spec.script) == bool(spec.wrap):
        raise InvalidArgument(f"{where}.script", 'set exactly one of script (a batch script, e.g. "run.sh") and wrap '
                                                 '(a command line, e.g. "python sim.py")')
    if spec.args and not spec.script:
        raise InvalidArgument(f"{where}.args", "args are the script's arguments; put them in wrap instead")
    if task.args_json:
        raise InvalidArgument(f"{path}.args_json", "args are for python tasks; put a script's arguments in slurm.args")
    _check_text(where, spec)
    _check_shape(where, spec)
    _check_extra(f"{where}.extra_args", spec.extra_args)
    if spec.array:
        array_indexes(f"{where}.array", spec.array)
    wanted = task.requires.get(LABEL, LABEL_VALUE)
    if wanted != LABEL_VALUE:
        raise InvalidArgument(f"{path}.requires.{LABEL}", f"a Slurm task runs only on agents with {LABEL}="
                                                          f"{LABEL_VALUE}; remove requires.{LABEL}")
    return replace(task, requires={**task.requires, LABEL: LABEL_VALUE})


def expand_array(path: str, task: TaskSpec, base: TaskSpec) -> list[tuple[str, TaskSpec]]:
    """One task per array element, `NAME[INDEX]`, each a one-element array."""
    if task.matrix or task.items_json:
        raise InvalidArgument(f"{path}.slurm.array", "a task is either a Slurm array or a sweep (matrix) or chunked "
                                                     "(items), not both; drop one")
    assert base.slurm is not None
    return [(f"{task.name}[{index}]", replace(base, slurm=replace(base.slurm, array=str(index))))
            for index in array_indexes(f"{path}.slurm.array", base.slurm.array)]


def array_indexes(where: str, text: str) -> list[int]:
    """The indexes of Slurm array syntax: "1-8", "1,3,5", "0-15:4" (no "%N" throttle)."""
    if "%" in text:
        raise InvalidArgument(where, f"{text!r} has a %N throttle, but each element is a task of its own; drop it "
                                     "and limit how many run at once with the agent's --slots")
    indexes: list[int] = []
    for item in text.split(","):
        match = _ARRAY_ITEM.fullmatch(item.strip())
        if match is None:
            raise InvalidArgument(where, f"{item!r} is not an array index or range; write e.g. \"1-8\", \"1,3,5\" or "
                                         "\"0-15:4\"")
        first, last, step = int(match[1]), int(match[2] or match[1]), int(match[3] or 1)
        if last < first or step < 1 or last > MAX_INDEX:
            raise InvalidArgument(where, f"{item!r} is not a range from low to high with a step of at least 1, "
                                         f"with indexes up to {MAX_INDEX}")
        indexes.extend(range(first, last + 1, step))
    seen: set[int] = set()
    for index in indexes:
        if index in seen:
            raise InvalidArgument(where, f"names index {index} twice; list each element once")
        seen.add(index)
    return indexes


def _check_text(where: str, spec: SlurmSpec) -> None:
    for name in ("script", "wrap", "partition", "time_limit", "mem", "array", "account", "qos"):
        value = getattr(spec, name)
        if len(value) > MAX_TEXT or "\x00" in value:
            raise InvalidArgument(f"{where}.{name}", f"must be at most {MAX_TEXT} characters, without NUL")
    for i, arg in enumerate(spec.args):
        if "\x00" in arg:
            raise InvalidArgument(f"{where}.args[{i}]", "contains a NUL character; remove it")


def _check_shape(where: str, spec: SlurmSpec) -> None:
    if spec.time_limit and not _TIME.fullmatch(spec.time_limit):
        raise InvalidArgument(f"{where}.time_limit", f"{spec.time_limit!r} is not a Slurm time: use minutes (\"30\"), "
                                                     "\"HH:MM:SS\", \"D-HH:MM:SS\" or \"UNLIMITED\"")
    if spec.mem and not _MEM.fullmatch(spec.mem):
        raise InvalidArgument(f"{where}.mem", f"{spec.mem!r} is not a memory size: use a number with an optional "
                                              "unit K, M, G or T, e.g. \"1G\"")
    if not 0 <= spec.cpus <= 1_000_000:
        raise InvalidArgument(f"{where}.cpus", f"must be a number of CPUs per task >= 1 (0 = Slurm's default), "
                                               f"got {spec.cpus}")
    for name in ("partition", "account", "qos"):
        value = getattr(spec, name)
        if value and not _NAME.fullmatch(value):
            raise InvalidArgument(f"{where}.{name}",
                                  f"{value!r} is not a Slurm {name} name (letters, digits, _ . , + -)")


def _check_extra(where: str, extra: tuple[str, ...]) -> None:
    for i, arg in enumerate(extra):
        if not arg.startswith("-") or "\x00" in arg:
            raise InvalidArgument(f"{where}[{i}]", f"{arg!r} is not an sbatch option; give options such as "
                                                   "\"--gres=gpu:1\", each with its value after =")
        option = arg.split("=", 1)[0]
        if not option.startswith("--"):
            option = option[:2]  # -oFILE is -o FILE
        if option in RESERVED_OPTIONS:
            raise InvalidArgument(f"{where}[{i}]", f"{option} is set by jobplane (the job's name, its output files, "
                                                   "its array index and working directory); remove it")
