import hashlib

import pytest

from jobplane.server.domain.signatures import (
    DEFAULT_HOST, KINDS, MAX_PER_TASK, Signature, parse_signature, parse_signatures,
)
from jobplane.server.errors import InvalidArgument

PATH = "spec.tasks[0].prerequisites[2]"
DIGEST = "ab" * 32

# One valid signature per kind, what it normalizes to, and how it reads.
VALID = [
    ({"kind": "file", "path": "/data/ref.fa", "size": 10, "sha256": DIGEST.upper(), "min_mtime": 1.7e9},
     {"path": "/data/ref.fa", "size": 10, "sha256": DIGEST, "min_mtime": 1700000000}, "file /data/ref.fa"),
    ({"kind": "file", "path": "refs/*.fa", "roots": ["/data", "/scratch"]},
     {"path": "refs/*.fa", "roots": ["/data", "/scratch"]}, "file refs/*.fa under /data, /scratch"),
    ({"kind": "executable", "name": "samtools", "dirs": ["/opt/bin"], "version_args": ["--version"],
      "version_regex": r"samtools (\S+)", "version": ">= 1.10 , < 2"},
     {"name": "samtools", "dirs": ["/opt/bin"], "version_args": ["--version"], "version_regex": r"samtools (\S+)",
      "version": ">=1.10,<2"}, "executable samtools >=1.10,<2"),
    ({"kind": "executable", "name": "/usr/bin/env", "version_args": []}, {"name": "/usr/bin/env"},
     "executable /usr/bin/env"),
    ({"kind": "python_package", "name": "Zope.Interface", "version": "~=5.4", "interpreter": "/usr/bin/python3"},
     {"name": "zope-interface", "version": "~=5.4", "interpreter": "/usr/bin/python3"},
     "python_package zope-interface ~=5.4"),
    ({"kind": "debian_package", "name": "libssl3", "version": ">=3.0.2-0ubuntu1.10"},
     {"name": "libssl3", "version": ">=3.0.2-0ubuntu1.10"}, "debian_package libssl3 >=3.0.2-0ubuntu1.10"),
    ({"kind": "env", "name": "CUDA_HOME", "pattern": "/usr/local/cuda*"},
     {"name": "CUDA_HOME", "pattern": "/usr/local/cuda*"}, "env CUDA_HOME matching /usr/local/cuda*"),
    ({"kind": "env", "name": "_X1"}, {"name": "_X1"}, "env _X1"),
    ({"kind": "port", "port": 5432}, {"port": 5432, "host": DEFAULT_HOST}, "port 127.0.0.1:5432"),
    ({"kind": "port", "port": 22, "host": "0:0::1"}, {"port": 22, "host": "::1"}, "port [::1]:22"),
    ({"kind": "port", "port": 80, "host": "DB.Local"}, {"port": 80, "host": "db.local"}, "port db.local:80"),
    ({"kind": "disk", "path": "/scratch", "free_bytes": 10 * 2**30}, {"path": "/scratch", "free_bytes": 10 * 2**30},
     "disk /scratch with 10 GiB free"),
    ({"kind": "memory", "free_bytes": 1536 * 2**20}, {"free_bytes": 1536 * 2**20}, "memory 1.5 GiB free"),
    ({"kind": "memory", "free_bytes": 2**30, "total_bytes": 16 * 2**30},
     {"free_bytes": 2**30, "total_bytes": 16 * 2**30}, "memory 1 GiB free, 16 GiB total"),
    ({"kind": "os", "value": "Linux"}, {"value": "linux"}, "os linux"),
    ({"kind": "arch", "value": "x86_64"}, {"value": "x86_64"}, "arch x86_64"),
    ({"kind": "kernel", "version": ">=5.4,!=5.10.0-rc1"}, {"version": ">=5.4,!=5.10.0-rc1"}, "kernel >=5.4,!=5.10.0-rc1"),
]


@pytest.mark.parametrize("raw, fields, text", VALID, ids=lambda v: v.get("kind") if isinstance(v, dict) else "")
def test_valid_signature_is_normalized_and_described(raw, fields, text):
    signature = parse_signature(PATH, raw)
    assert signature.as_dict() == {"kind": raw["kind"], **fields}
    assert signature.describe() == text
    assert parse_signature(PATH, signature.as_dict()) == signature  # parsing what the agent gets changes nothing


def test_every_kind_has_a_valid_example():
    assert {raw["kind"] for raw, _, _ in VALID} == set(KINDS)


def test_signature_is_immutable_hashable_and_sorted():
    signature = parse_signature(PATH, {"path": "/scratch", "kind": "disk", "free_bytes": 1})
    assert [key for key, _ in signature.fields] == ["free_bytes", "path"]
    assert {signature: 1}[Signature("disk", (("path", "/scratch"), ("free_bytes", 1)))] == 1
    with pytest.raises(AttributeError):
        signature.kind = "file"


# --- rule violations name the field ---------------------------------------------------

INVALID = [
    # (raw, field under PATH, words in the message)
    ({"path": "/x"}, "kind", "is missing"),
    ({"kind": 3}, "kind", "must be a string, got an integer"),
    ({"kind": "fiel", "path": "/x"}, "kind", "did you mean 'file'"),
    ({"kind": "file", "paht": "/x"}, "paht", "did you mean 'path'? Use one of kind, path, roots"),
    ({"kind": "file"}, "path", "is required"),
    ({"kind": "file", "path": ""}, "path", "is empty"),
    ({"kind": "file", "path": 5}, "path", "must be a string"),
    ({"kind": "file", "path": "x" * 5000}, "path", "at most 4096"),
    ({"kind": "file", "path": "/a\x00b"}, "path", "NUL"),
    ({"kind": "file", "path": "ref.fa"}, "path", "is relative"),
    ({"kind": "file", "path": "../ref.fa", "roots": ["/data"]}, "path", "'..'"),
    ({"kind": "file", "path": "/ref.fa", "roots": ["/data"]}, "roots", "drop roots"),
    ({"kind": "file", "path": "ref.fa", "roots": "/data"}, "roots", "must be a list, got a string"),
    ({"kind": "file", "path": "ref.fa", "roots": ["/data", "data"]}, "roots[1]", "not an absolute path"),
    ({"kind": "file", "path": "ref.fa", "roots": ["/d"] * 65}, "roots", "at most 64"),
    ({"kind": "file", "path": "/x", "size": -1}, "size", "at least 0"),
    ({"kind": "file", "path": "/x", "size": 1.5}, "size", "must be a whole number, got a number (1.5)"),
    ({"kind": "file", "path": "/x", "size": True}, "size", "got a boolean (true)"),
    ({"kind": "file", "path": "/x", "sha256": "abc"}, "sha256", "64 hexadecimal digits"),
    ({"kind": "file", "path": "/x", "sha256": "g" * 64}, "sha256", "not a SHA-256 digest"),
    ({"kind": "file", "path": "/x", "min_mtime": "yesterday"}, "min_mtime", "must be a number"),
    ({"kind": "file", "path": "/x", "min_mtime": float("nan")}, "min_mtime", "finite"),
    ({"kind": "file", "path": "/x", "min_mtime": None}, "min_mtime", "got null"),
    ({"kind": "executable"}, "name", "is required"),
    ({"kind": "executable", "name": "bin/tool"}, "name", "not absolute"),
    ({"kind": "executable", "name": "/bin/tool", "dirs": ["/opt"]}, "dirs", "drop dirs"),
    ({"kind": "executable", "name": "tool", "dirs": ["opt"]}, "dirs[0]", "not an absolute path"),
    ({"kind": "executable", "name": "tool", "version_args": ["-V", 2]}, "version_args[1]", "must be a string"),
    ({"kind": "executable", "name": "tool", "version": ">=1"}, "version_args", "needed by version"),
    ({"kind": "executable", "name": "tool", "version_regex": "(.*)"}, "version_args", "needed by version_regex"),
    ({"kind": "executable", "name": "tool", "version_args": ["-V"], "version_regex": "(unclosed"},
     "version_regex", "does not compile"),
    ({"kind": "executable", "name": "tool", "version_args": ["-V"], "version_regex": r"(\d+)\.(\d+)"},
     "version_regex", "has 2 groups"),
    ({"kind": "executable", "name": "tool", "version_args": ["-V"], "version": "1.2"}, "version", "no operator"),
    ({"kind": "executable", "name": "tool", "versoin": ">=1"}, "versoin", "did you mean 'version'"),
    ({"kind": "python_package", "name": "-numpy"}, "name", "not a distribution name"),
    ({"kind": "python_package", "name": "numpy", "interpreter": "python3"}, "interpreter", "not an absolute path"),
    ({"kind": "python_package", "name": "numpy", "version": "latest"}, "version", "no operator"),
    ({"kind": "debian_package", "name": "Samtools"}, "name", "use lowercase: 'samtools'"),
    ({"kind": "debian_package", "name": "a"}, "name", "not a Debian package name"),
    ({"kind": "debian_package", "name": "lib_ssl"}, "name", "not a Debian package name"),
    ({"kind": "env", "name": "1PATH"}, "name", "not a variable name"),
    ({"kind": "env", "name": "A-B"}, "name", "not a variable name"),
    ({"kind": "env", "name": "HOME", "pattern": 3}, "pattern", "must be a string"),
    ({"kind": "port"}, "port", "is required"),
    ({"kind": "port", "port": 0}, "port", "from 1 to 65535"),
    ({"kind": "port", "port": 65536}, "port", "from 1 to 65535"),
    ({"kind": "port", "port": "22"}, "port", "must be a whole number, got a string ('22')"),
    ({"kind": "port", "port": 22, "host": "bad host"}, "host", "neither an IP address nor a host name"),
    ({"kind": "disk", "free_bytes": 1}, "path", "is required"),
    ({"kind": "disk", "path": "/scratch"}, "free_bytes", "is required"),
    ({"kind": "disk", "path": "scratch", "free_bytes": 1}, "path", "not an absolute path"),
    ({"kind": "disk", "path": "/scratch", "free_bytes": 0}, "free_bytes", "at least 1"),
    ({"kind": "memory"}, "free_bytes", "unless total_bytes is given"),
    ({"kind": "memory", "total_bytes": -5}, "total_bytes", "at least 1"),
    ({"kind": "memory", "free_bytes": 1, "swap": 2}, "swap", "use one of kind, free_bytes, total_bytes"),
    ({"kind": "os"}, "value", "is required"),
    ({"kind": "os", "value": "linux gnu"}, "value", "not a platform name"),
    ({"kind": "arch", "value": ["x86_64"]}, "value", "must be a string, got a list"),
    ({"kind": "kernel"}, "version", "is required"),
    ({"kind": "kernel", "version": ">=5.4,"}, "version", "empty clause"),
]


@pytest.mark.parametrize("raw, field, words", INVALID)
def test_rule_violation_names_the_field_and_the_fix(raw, field, words):
    with pytest.raises(InvalidArgument) as caught:
        parse_signature(PATH, raw)
    assert caught.value.field == f"{PATH}.{field}"
    assert words in str(caught.value)


@pytest.mark.parametrize("raw", [["kind", "file"], "file:/x", None])
def test_a_signature_must_be_a_table(raw):
    with pytest.raises(InvalidArgument, match="must be a table") as caught:
        parse_signature(PATH, raw)
    assert caught.value.field == PATH


# --- version constraints ----------------------------------------------------------------

@pytest.mark.parametrize("text, normalized", [
    (">=1.10", ">=1.10"),
    (">= 1.10 , <2", ">=1.10,<2"),
    ("==1.2.*", "==1.2.*"),
    ("!=1.3", "!=1.3"),
    ("~=2.2", "~=2.2"),
    ("<=1:2.30-1ubuntu2~22.04", "<=1:2.30-1ubuntu2~22.04"),
    (">1.0+local.7", ">1.0+local.7"),
    ("<3a1", "<3a1"),
    ("==5.15.0-91-generic", "==5.15.0-91-generic"),
    (">=3.10,<4,!=3.11.2", ">=3.10,<4,!=3.11.2"),
])
def test_valid_constraints_are_kept_without_spaces(text, normalized):
    signature = parse_signature(PATH, {"kind": "kernel", "version": text})
    assert signature.as_dict()["version"] == normalized


@pytest.mark.parametrize("text, words", [
    ("1.10", "has no operator; write e.g. '==1.10'"),
    ("=1.0", "unknown operator '='"),
    ("===1.0", "unknown operator '==='"),
    ("=>1.0", "unknown operator '=>'"),
    (">=", "'>=' has no version after it"),
    (">=1.0,", "empty clause"),
    (",>=1.0", "empty clause"),
    (">=1.0,,<2", "empty clause"),
    ("   ", "empty clause"),
    (">=1.*", "'.*' may only follow '=='"),
    ("!=1.*", "'.*' may only follow '=='"),
    ("==.*", "'==' has no version after it"),
    (">=1. 2", "'1. 2' is not a version"),
    (">=1.", "'1.' is not a version"),
    (">=.1", "'.1' is not a version"),
    (">=1.0;<2", "'1.0;<2' is not a version"),
    (">=1.0 <2", "'1.0 <2' is not a version"),
    ("~=1", "'~=' needs at least two version components"),
])
def test_invalid_constraints_say_what_is_wrong(text, words):
    with pytest.raises(InvalidArgument) as caught:
        parse_signature(PATH, {"kind": "kernel", "version": text})
    assert caught.value.field == f"{PATH}.version"
    assert f"{text!r} is not a version constraint" in str(caught.value)
    assert words in str(caught.value)


# --- ids --------------------------------------------------------------------------------

def test_id_is_short_hex_and_stable():
    signature = parse_signature(PATH, {"kind": "file", "path": "/data/ref.fa"})
    # Pinned: ids are stored with inventory entries, so changing the hashing orphans them.
    canonical = b'{"kind":"file","path":"/data/ref.fa"}'
    assert signature.id == hashlib.sha256(canonical).hexdigest()[:16] == "ae2327789c017c8c"


@pytest.mark.parametrize("a, b", [
    ({"kind": "file", "path": "/x", "size": 1, "sha256": DIGEST},
     {"sha256": DIGEST.upper(), "size": 1, "path": "/x", "kind": "file"}),
    ({"kind": "port", "port": 22}, {"kind": "port", "port": 22, "host": "127.0.0.1"}),
    ({"kind": "port", "port": 22.0, "host": "LOCALHOST"}, {"kind": "port", "port": 22, "host": "localhost"}),
    ({"kind": "executable", "name": "tool", "version_args": []}, {"kind": "executable", "name": "tool"}),
    ({"kind": "python_package", "name": "Foo_Bar"}, {"kind": "python_package", "name": "foo.bar"}),
    ({"kind": "kernel", "version": ">= 5.4, <6"}, {"kind": "kernel", "version": ">=5.4,<6"}),
    ({"kind": "file", "path": "/x", "min_mtime": 1700000000.0}, {"kind": "file", "path": "/x", "min_mtime": 1700000000}),
])
def test_equal_content_gives_equal_ids(a, b):
    assert parse_signature(PATH, a).id == parse_signature(PATH, b).id
    assert parse_signature(PATH, a) == parse_signature(PATH, b)


@pytest.mark.parametrize("a, b", [
    ({"kind": "file", "path": "/x"}, {"kind": "file", "path": "/y"}),
    ({"kind": "file", "path": "/x"}, {"kind": "file", "path": "/x", "size": 0}),
    ({"kind": "file", "path": "x", "roots": ["/a", "/b"]}, {"kind": "file", "path": "x", "roots": ["/b", "/a"]}),
    ({"kind": "port", "port": 22}, {"kind": "port", "port": 22, "host": "localhost"}),
    ({"kind": "os", "value": "linux"}, {"kind": "arch", "value": "linux"}),
    ({"kind": "disk", "path": "/x", "free_bytes": 1}, {"kind": "disk", "path": "/x", "free_bytes": 2}),
    ({"kind": "executable", "name": "t", "version_args": ["-V", "x"]},
     {"kind": "executable", "name": "t", "version_args": ["x", "-V"]}),
])
def test_different_content_gives_different_ids(a, b):
    assert parse_signature(PATH, a).id != parse_signature(PATH, b).id


def test_every_valid_example_has_its_own_id():
    ids = [parse_signature(PATH, raw).id for raw, _, _ in VALID]
    assert len(set(ids)) == len(ids)


# --- a task's list ----------------------------------------------------------------------

TASK = "spec.tasks[0].prerequisites"


def test_a_task_list_parses_in_order():
    raws = [{"kind": "os", "value": "linux"}, {"kind": "file", "path": "/data/ref.fa"}]
    assert [s.describe() for s in parse_signatures(TASK, raws)] == ["os linux", "file /data/ref.fa"]
    assert parse_signatures(TASK, []) == ()


def test_an_error_in_the_list_names_the_index():
    with pytest.raises(InvalidArgument) as caught:
        parse_signatures(TASK, [{"kind": "os", "value": "linux"}, {"kind": "disk", "path": "/x", "free_bytes": 0}])
    assert caught.value.field == f"{TASK}[1].free_bytes"


def test_duplicates_are_refused_naming_both_indexes():
    raws = [{"kind": "port", "port": 22}, {"kind": "os", "value": "linux"}, {"kind": "port", "port": 22, "host": "127.0.0.1"}]
    with pytest.raises(InvalidArgument, match=r"repeats spec\.tasks\[0\]\.prerequisites\[0\] \(port 127\.0\.0\.1:22\)") as caught:
        parse_signatures(TASK, raws)
    assert caught.value.field == f"{TASK}[2]"


def test_at_most_fifty_per_task():
    raws = [{"kind": "port", "port": port} for port in range(1, MAX_PER_TASK + 2)]
    assert len(parse_signatures(TASK, raws[:MAX_PER_TASK])) == MAX_PER_TASK
    with pytest.raises(InvalidArgument, match=f"has {MAX_PER_TASK + 1} prerequisites; .* at most {MAX_PER_TASK}") as caught:
        parse_signatures(TASK, raws)
    assert caught.value.field == TASK


@pytest.mark.parametrize("raws", [{"kind": "os", "value": "linux"}, "os", 5])
def test_prerequisites_must_be_a_list(raws):
    with pytest.raises(InvalidArgument, match="must be a list") as caught:
        parse_signatures(TASK, raws)
    assert caught.value.field == TASK


def test_roots_may_start_with_an_agent_environment_variable():
    for root in ("$DATA", "${DATA}/refs", "/srv/data"):
        assert parse_signature("p", {"kind": "file", "path": "ref.fa", "roots": [root]}).as_dict()["roots"] == [root]
    with pytest.raises(InvalidArgument, match=r"p\.roots\[0\]"):
        parse_signature("p", {"kind": "file", "path": "ref.fa", "roots": ["$1DATA"]})
