import pytest

from looplab.experiment import ScreenConfig
from looplab.records import Outcome
from looplab.screen import screen

POLICY = ScreenConfig(allowed_includes=["string.h", "math.h"], forbidden_identifiers=["malloc"], max_bytes=2000)
OK_C = "#include <math.h>\nvoid f(float* x, int n) { for (int i = 0; i < n; i++) x[i] = sqrtf(x[i]); }\n"


def test_clean_candidate_passes():
    assert screen(OK_C, language="c", policy=POLICY) is None


@pytest.mark.parametrize("source, rule", [
    ('#include "../harness/bench.c"\n' + OK_C, "include not allowed"),
    ("#include <stdio.h>\n" + OK_C, "include not allowed"),
    (OK_C + "void g(void) { malloc(4); }\n", "forbidden identifier"),
    (OK_C + "void g(void) { __asm__(\"nop\"); }\n", "forbidden identifier"),
    (OK_C + "long g(void) { return syscall(39); }\n", "forbidden identifier"),
    ("#pragma omp parallel for\n" + OK_C, "forbidden directive"),
    (OK_C + "/*" + "x" * 3000 + "*/", "max_bytes"),
])
def test_c_rules_fire_with_their_name(source, rule):
    verdict = screen(source, language="c", policy=POLICY)
    assert verdict is not None and verdict.outcome == Outcome.SCREEN_REJECTED and verdict.rule == rule


def test_forbidden_word_in_comment_or_string_is_fine():
    src = OK_C + '/* do not fork here */ const char* s = "system";\n'
    assert screen(src, language="c", policy=POLICY) is None


@pytest.mark.parametrize("source, outcome, rule", [
    ("import os\ndef f(x):\n    return x\n", Outcome.SCREEN_REJECTED, "import not allowed"),
    ("from ctypes import CDLL\n", Outcome.SCREEN_REJECTED, "import not allowed"),
    ("def f(x):\n    return eval('x')\n", Outcome.SCREEN_REJECTED, "forbidden identifier"),
    ("def f(x):\n    return x.__class__\n", Outcome.SCREEN_REJECTED, "forbidden identifier"),
    ("import numpy\n", Outcome.SCREEN_REJECTED, "import not allowed"),
    ("def f(x:\n", Outcome.COMPILE_ERROR, "syntax"),
])
def test_python_rules(source, outcome, rule):
    verdict = screen(source, language="python", policy=ScreenConfig(allowed_imports=["functools", "math"]))
    assert verdict is not None and (verdict.outcome, verdict.rule) == (outcome, rule)


def test_python_allowed_import_passes():
    src = "from functools import lru_cache\nimport math\ndef f(x):\n    return math.sqrt(x)\n"
    assert screen(src, language="python", policy=ScreenConfig(allowed_imports=["functools", "math"])) is None
