import pytest

from looplab.config import ScreenConfig
from looplab.records import Outcome
from looplab.screen.policy import screen

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


@pytest.mark.parametrize("source, rule, word", [
    ("%:include <stdio.h>\n" + OK_C, "include not allowed", "<stdio.h>"),
    ("??=include <stdio.h>\n" + OK_C, "include not allowed", "<stdio.h>"),
    ("#inc\\\nlude <stdio.h>\n" + OK_C, "include not allowed", "<stdio.h>"),
    ("/* c */ # /* d */ include <stdio.h>\n" + OK_C, "include not allowed", "<stdio.h>"),
    ('#define H "../../experiment.toml"\n#include H\n' + OK_C, "include not allowed", "computed"),
    ("#include_next <stdio.h>\n" + OK_C, "include not allowed", "<stdio.h>"),
    ('#import "x.h"\n' + OK_C, "include not allowed", "local headers"),
    (OK_C + "long g(void) { return sys\\\ncall(39); }\n", "forbidden identifier", "syscall"),
    ('#line 1 "/usr/include/math.h"\n' + OK_C, "forbidden directive", "#line"),
    ('# 1 "/usr/include/math.h" 1 3\n' + OK_C, "forbidden directive", "line markers"),
    ('%:line 7\n' + OK_C, "forbidden directive", "#line"),
    ('#embed "data.bin"\n' + OK_C, "forbidden directive", "#embed"),
    ('_Pragma("omp parallel for")\n' + OK_C, "forbidden directive", "omp"),
    ("#pragma weak open\n" + OK_C, "forbidden directive", "weak"),
    ('#if __has_include("../../experiment.toml")\n#endif\n' + OK_C, "forbidden identifier", "__has_include"),
    (OK_C + "void g(void) { __builtin_frame_address(1); }\n", "forbidden identifier", "__builtin_frame_address"),
])
def test_c_screen_reads_the_text_as_the_preprocessor_tokenises_it(source, rule, word):
    verdict = screen(source, language="c", policy=POLICY)
    assert verdict is not None and verdict.rule == rule and word in verdict.reason, verdict


def test_absolute_or_escaping_angle_includes_are_refused_even_without_an_include_list():
    for header in ("/etc/passwd", "../../../etc/passwd"):
        verdict = screen(f"#include <{header}>\n" + OK_C, language="c", policy=ScreenConfig())
        assert verdict is not None and verdict.rule == "include not allowed"
    assert screen("#include <sys/types.h>\n" + OK_C, language="c", policy=ScreenConfig()) is None


def test_asm_is_refused_unless_the_experiment_allows_it():
    src = OK_C + 'void g(void) { __asm__ volatile("" ::: "memory"); }\n'
    assert screen(src, language="c", policy=ScreenConfig()).rule == "forbidden identifier"
    assert screen(src, language="c", policy=ScreenConfig(allow_asm=True)) is None


def test_splices_and_digraphs_keep_line_numbers_and_strings_stay():
    from looplab.screen.policy import normalise_c
    assert normalise_c("a\\\nb\nc") == "ab\n\nc"
    assert normalise_c('%:define X "??="\n') == '#define X "#"\n'


@pytest.mark.parametrize("source", [
    "def f(x):\n    match x:\n        case object(__class__=c):\n            return c\n",
    "import operator\ndef f(x):\n    return operator.attrgetter('__class__')(x)\n",
    "from operator import methodcaller\ndef f(x):\n    return methodcaller('__reduce__')(x)\n",
])
def test_python_attribute_reads_by_pattern_or_by_name_are_refused(source):
    verdict = screen(source, language="python", policy=ScreenConfig(allowed_imports=["operator"]))
    assert verdict is not None and verdict.rule == "forbidden identifier", verdict


def test_macros_may_not_come_before_an_include_but_feature_test_macros_may():
    verdict = screen("#define BLOCK 64\n#include <math.h>\n" + OK_C, language="c", policy=POLICY)
    assert verdict is not None and verdict.rule == "macro before include" and "#define BLOCK" in verdict.reason
    verdict = screen("#include <math.h>\n#undef sqrtf\n#include <string.h>\n" + OK_C, language="c", policy=POLICY)
    assert verdict is not None and verdict.rule == "macro before include"
    for macro in ("_GNU_SOURCE", "_POSIX_C_SOURCE 200809L", "__STDC_WANT_IEC_60559_TYPES_EXT__", "NDEBUG"):
        assert screen(f"#define {macro}\n#include <math.h>\n" + OK_C, language="c", policy=POLICY) is None
    assert screen(OK_C.replace("\n", "\n#define BLOCK 64\n", 1), language="c", policy=POLICY) is None
    verdict = screen('#define _GNU_SOURCE __asm__("nop")\n#include <math.h>\n' + OK_C, language="c", policy=POLICY)
    assert verdict is not None and verdict.rule == "macro before include"
