# The two commands: `make demo` sets up and runs a short search; `make test` sets up and runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_EXPERIMENT ?= experiments/linear
DEMO_ARGS ?= --model local --loop 3 --max-tokens 768

.PHONY: demo test setup system-deps test-deps lint clean

demo: system-deps $(VENV)/.installed-demo
	@$(BIN)/python -m compileall -q looplab >/dev/null  # bytecode once, as a wheel install has it (PYTHONDONTWRITEBYTECODE)
	$(BIN)/looplab run $(DEMO_EXPERIMENT) $(DEMO_ARGS)

test: system-deps test-deps $(VENV)/.installed-test
	$(BIN)/ruff check looplab tests benchmarks
	$(BIN)/python -m pytest -q

setup: system-deps $(VENV)/.installed-test

# gcc builds candidates, bubblewrap isolates them, libseccomp confines the harness's worker; installed with apt when missing and we are root.
system-deps:
	@missing=""; \
	command -v gcc >/dev/null || missing="$$missing gcc"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v git >/dev/null || missing="$$missing git"; \
	[ -f /usr/include/seccomp.h ] || missing="$$missing libseccomp-dev"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "looplab: please install:$$missing (e.g. sudo apt-get install$$missing)"; \
	  case "$$missing" in *gcc*) exit 2;; esac; fi; \
	fi

# llama.cpp is built from source with AMX off: its AMX matmul segfaults on the first decode on
# AMX CPUs (llama.cpp #20824). pip caches the built wheel, so only the first setup pays ~4 min.
LLAMA_CMAKE_ARGS := -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

$(VENV)/.installed-demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[local]'
	touch $@

$(VENV)/.installed-test: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e '.[test,local,ray,postgres]'
	touch $@

# Test-only services: a real headless Chromium for the dashboard, a real PostgreSQL for shared stores;
# and Debian's cargo/rustc for experiments/rust_sort (its builds put /usr/bin first: a rustup install
# under a home folder is invisible inside the sandbox).
# The open FPGA flow for experiments/rv32i_ice40: yosys, nextpnr-ice40, icetime, Verilator, a RISC-V gcc.
test-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/cargo ] || missing="$$missing cargo"; \
	for t in yosys nextpnr-ice40 icetime:fpga-icestorm verilator riscv64-unknown-elf-gcc:gcc-riscv64-unknown-elf; do \
	  command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "looplab: not installed:$$missing; those tests will be skipped"; fi; \
	fi

lint:
	$(BIN)/ruff check looplab tests benchmarks

clean:
	rm -rf $(VENV)
