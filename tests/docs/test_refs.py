#!/usr/bin/env python3
"""test_refs.py SRC CTEST BUILD GTEST_BINARY...: every test the docs name as proof exists.

The docs (README.md, docs/*.md, scripts/lab/README.md) prove each claim by naming a test; a renamed
or removed test leaves a proof that proves nothing. What counts as a test reference, and what it is
checked against:
- a backticked gtest name, `Suite.Name`, `Suite.*`, `Suite.Prefix*` (optionally
  `Instance/Suite.Name/Param`): a test of the gtest binaries' --gtest_list_tests (a wildcard must
  match at least one); `Prefix*` must match a suite's name or a test's name within its suite;
- a backticked test name without its suite (`ThreeOrMoreWords`, `*Words`) after a gtest name or a
  *_test.cpp in the same paragraph, list item or table row ("(incl. `Name`)", "guard_test.cpp
  `Name`"): the name of a test of some suite;
- a shell test `t_name.sh` or `t_name` (anywhere): tests/*/t_name.sh, or for `t_name` a shell
  function of tests/ or scripts/ (tests/netns/lib.sh's `t_gateway`);
- a VM scenario: the words after `tests/vm/vm-tier.sh`, and the first list of backticked names
  after "VM" in its clause ("VM `nat_policy`, `ike`", "VM probe ... in `nat_vti`"):
  tests/vm/t_NAME.sh;
- a backticked VM check, `nat_check_*` or `check_*`: a shell function of tests/;
- a path under tests/ or scripts/ (anywhere; globs allowed), a bare `*_test.cpp`: a file of the
  tree;
- a backticked `ctest ... -R REGEX` / `-L REGEX`, and "unit `NAME`": a test / label of `ctest -N`;
- a backticked `--gtest_filter=PATTERNS`: each positive pattern matches a gtest test.
Exits 1 with FILE:LINE: REFERENCE: WHY for each reference that names nothing."""
import fnmatch
import glob
import os
import re
import shlex
import subprocess
import sys

src, ctest, build, binaries = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
DOCS = ["README.md", *sorted(os.path.relpath(p, src) for p in glob.glob(f"{src}/docs/*.md")),
        "scripts/lab/README.md"]
# The kernel's names the docs cite, shaped like a VM check (the verifier's function,
# docs/datapath.md "Stack") or a bare test name (the /proc/net/xfrm_stat counters).
KERNEL_NAME = re.compile(r"check_max_stack_depth|Xfrm(?:In|Out|Fwd|Acquire)[A-Za-z]*")


def gtest_names():
    """Full names (Suite.Name) of every test of the binaries, disabled ones included."""
    names = set()
    for binary in binaries:
        out = subprocess.run([binary, "--gtest_list_tests"], check=True, capture_output=True,
                             text=True).stdout
        suite = None
        for line in out.splitlines():
            if not line.strip():
                continue
            word = line.split()[0]
            if not line.startswith(" "):
                # "Suite.", "Instance/Suite." or "Suite/0." (then "# TypeParam = ..."); not
                # gtest_main's "Running main() from ...".
                suite = word if word.endswith(".") else None
            elif suite:
                names.add(suite + word)  # "Name" or "Name/0" (then "# GetParam() = ...")
    return names


def plain_name(test):
    """Suite.Name of a parameterized instance (Instance/Suite.Name/0, Suite/0.Name), as the docs
    name it."""
    suite, name = test.split(".", 1)
    suite = [part for part in suite.split("/") if not part.isdigit()][-1]
    return f"{suite}.{name.split('/')[0]}"


def ctest_names_and_labels():
    def run(*args):
        return subprocess.run([ctest, *args], cwd=build, check=True, capture_output=True,
                              text=True).stdout
    tests = re.findall(r"^\s*Test\s+#\d+: (\S+)", run("-N"), re.M)
    labels = [line.strip() for line in run("--print-labels").splitlines()[1:] if line.strip()]
    return tests, labels


def shell_functions():
    names = set()
    for path in glob.glob(f"{src}/tests/**/*.sh", recursive=True) + \
            glob.glob(f"{src}/scripts/**/*.sh", recursive=True):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r"^\s*(?:function\s+)?([A-Za-z_]\w*)\s*\(\)", f.read(), re.M))
    return names


GTEST = re.compile(r"(?:[A-Z]\w*/)?[A-Z][A-Za-z0-9]*\.(?:[A-Z][A-Za-z0-9_]*\*?|\*)(?:/\w+)?"
                   r"|[A-Z][A-Za-z0-9]*\*")
SHELL_TEST = re.compile(r"(?<![\w/.-])(t_[a-z0-9_]+)(\.sh)?\b")
PATH = re.compile(r"(?<![\w/.-])((?:tests|scripts)/[\w./*-]*[\w*/])")
BARE_TEST_SOURCE = re.compile(r"(?<![\w/.-])(\w+_test\.cpp)\b")
VM_TIER = re.compile(r"tests/vm/vm-tier\.sh((?: +[a-z][a-z0-9_]*)+)")
VM_LIST = re.compile(r"\bVM\b[^`|;.()]*?"
                     r"(`[a-z][a-z0-9_]*`(?:(?:,| and|, and) +`[a-z][a-z0-9_]*`)*)")
UNIT_CTEST = re.compile(r"\bunit +`([a-z][a-z0-9_]*)`")
# A test's name without its suite (four or more capitalised words: a sentence, not a class name such as `CtTableGc`), after an anchor.
BARE_GTEST = re.compile(r"\*?(?=\w*[a-z])(?:[A-Z][a-z0-9]*){4,}\*?")


def blocks(text):
    """(first line number, text) of each paragraph, list item and table row."""
    block, first = [], 1
    for number, line in enumerate(text.splitlines(), 1):
        starts = not line.strip() or re.match(r"\s*(?:[-*|#]|\d+\.|```)", line)
        if starts and block:
            yield first, block
            block = []
        if line.strip():
            if not block:
                first = number
            block.append(line)
    if block:
        yield first, block


def references(text):
    """(line, kind, reference) for each test reference of a document's text."""
    for first, lines in blocks(text):
        anchored = False  # a gtest name or a test source seen earlier in the block
        for number, line in enumerate(lines, first):
            # In the order of the line, so that a bare test name follows its anchor.
            for m in re.finditer(r"`([^`]+)`|\w+_test\.cpp", line):
                token = m.group(1)
                if token is None or token.endswith("_test.cpp"):
                    anchored = True
                elif GTEST.fullmatch(token):
                    anchored = True
                    yield number, "gtest", token
                elif KERNEL_NAME.fullmatch(token):
                    continue
                elif anchored and BARE_GTEST.fullmatch(token):
                    yield number, "gtest-bare", token
                elif re.fullmatch(r"(?:nat_)?check_[a-z0-9_]+", token):
                    yield number, "function", token
                elif "--gtest_filter=" in token:
                    positive = token.split("--gtest_filter=", 1)[1].split()[0].split("-")[0]
                    for pattern in filter(None, positive.strip("'\"").split(":")):
                        anchored = True
                        yield number, "gtest", pattern
                elif token.startswith("ctest "):
                    words = shlex.split(token)
                    for flag, value in zip(words, words[1:]):
                        if flag in ("-R", "-L"):
                            yield number, "ctest" + flag, value
            for name, dot_sh in SHELL_TEST.findall(line):
                yield number, "shell-test" if dot_sh else "shell-name", name + dot_sh
            for path in PATH.findall(line):
                yield number, "path", path
            for name in BARE_TEST_SOURCE.findall(line):
                yield number, "test-source", name
            for words in VM_TIER.findall(line):
                for name in words.split():
                    yield number, "vm", name
            for names in VM_LIST.findall(line):
                for name in re.findall(r"`([a-z0-9_]+)`", names):
                    # t_NAME is a shell test above, (nat_)check_NAME a function.
                    if not name.startswith("t_") and "check_" not in name:
                        yield number, "vm", name
            for name in UNIT_CTEST.findall(line):
                yield number, "ctest-R", f"^unit\\.{name}$"


# One stale reference of each kind (beside two that exist): the check must flag exactly those,
# else its extraction has gone blind to a kind.
STALE_FIXTURE = """\
Tests: bpf `Nat66.NoSuchTest`, `NoSuchSuite.*`, `Nat66.NoSuch*`, `NoSuchPrefix*`;

`tests/bpf/nat66_test.cpp` `NoSuchBareTestName`; netns `t_no_such.sh`, `t_no_such_function`,
tests/netns/t_no_such_either.sh, no_such_test.cpp; `tests/vm/vm-tier.sh no_such_scenario`;
VM `no_such_vm`, `nat_check_no_such`; `ctest -R unit.no_such -L no_such_label`;
unit `no_such_ctest`; `ipsnat_bpf_tests --gtest_filter=Nat66.*:NoSuchFilter.*-Nat66.NoSuchNegative`.
"""
STALE_FIXTURE_REFS = 16


def main():
    tests = gtest_names()
    plain = {plain_name(t) for t in tests}
    suites_and_names = {part for name in plain for part in name.split(".")}
    names = {name.split(".", 1)[1] for name in plain}
    ctest_tests, ctest_labels = ctest_names_and_labels()
    functions = shell_functions()
    scripts = {os.path.basename(p)[:-3] for p in glob.glob(f"{src}/tests/*/t_*.sh")}

    def why_not(kind, ref):
        """None when the reference names something, else what it does not name."""
        if kind == "gtest":
            if "." not in ref:  # `Paced*` (suites), guard_test.cpp `Ipv6*` (tests of a suite)
                return None if any(fnmatch.fnmatchcase(p, ref) for p in suites_and_names) \
                    else "matches no gtest suite or test"
            if "*" in ref:
                return None if any(fnmatch.fnmatchcase(t, ref) for t in tests | plain) \
                    else "matches no gtest test"
            return None if ref in tests or ref in plain else "no such gtest test"
        if kind == "gtest-bare":
            return None if any(fnmatch.fnmatchcase(name, ref) for name in names) \
                else "no gtest test of that name in any suite"
        if kind == "shell-test":
            return None if ref[:-3] in scripts else "no tests/*/" + ref
        if kind == "shell-name":
            return None if ref in scripts or ref in functions \
                else f"no tests/*/{ref}.sh nor shell function {ref}"
        if kind == "function":
            return None if ref in functions else "no shell function of that name"
        if kind == "vm":
            return None if os.path.isfile(f"{src}/tests/vm/t_{ref}.sh") \
                else f"no tests/vm/t_{ref}.sh"
        if kind == "path":
            return None if glob.glob(f"{src}/{ref}") else "no such file"
        if kind == "test-source":
            return None if glob.glob(f"{src}/tests/**/{ref}", recursive=True) \
                else "no such file in tests/"
        if kind == "ctest-R":
            return None if any(re.search(ref, t) for t in ctest_tests) else "matches no ctest test"
        if kind == "ctest-L":
            return None if any(re.search(ref, label) for label in ctest_labels) \
                else "matches no ctest label"
        raise AssertionError(kind)

    def stale(text):
        refs = list(references(text))
        return len(refs), [(number, ref, why) for number, kind, ref in refs
                           if (why := why_not(kind, ref))]

    _, flagged = stale(STALE_FIXTURE)
    if len(flagged) != STALE_FIXTURE_REFS:
        print(f"FAIL: {len(flagged)} of the fixture's {STALE_FIXTURE_REFS} stale references "
              f"flagged: {flagged}")
        return 1
    checked = failed = 0
    for doc in DOCS:
        path = os.path.join(src, doc)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            count, flagged = stale(f.read())
        checked += count
        for number, ref, why in flagged:
            failed += 1
            print(f"{doc}:{number}: {ref}: {why}")
    if failed:
        print(f"FAIL: {failed} of {checked} test references in the docs name nothing")
        return 1
    if checked < 300:
        print(f"FAIL: only {checked} test references found: the extraction is broken")
        return 1
    print(f"ok: {checked} test references in {len(DOCS)} docs name existing tests")
    return 0


sys.exit(main())
