# fairlease — see README.md. `make demo` runs the main job, `make test`
# runs every check CI runs.

GO       ?= go
# libvirt is loaded when an agent starts, not linked: the broker and the
# simulator build and run without libvirt installed.
TAGS     ?= libvirt_dlopen
GOFLAGS  += -tags=$(TAGS)
export GOFLAGS
BIN      := bin/fairlease
OUT      := out
TRACE    := testdata/SDSC-SP2-1998-4.2-cln.swf.gz
SHARED   := ../shared/traces

.PHONY: all build deps deps-qemu demo sim-demo test vet fmt-check sim-traces bench clean testimage

all: build

build:
	$(GO) build -o $(BIN) ./cmd/fairlease

# Debian packages: libvirt's library and qemu-img (host agents, the test
# driver), and for real VMs libvirtd and QEMU. Installed when run as root;
# otherwise they are named.
deps:
	@scripts/deps.sh runtime

deps-qemu:
	@scripts/deps.sh qemu

# The main job: start a whole broker on this machine (fairlease up), ask it
# for a one-click cluster, and watch it run and expire.
demo: build deps
	@mkdir -p $(OUT)
	BIN=$(BIN) DATA=$(OUT)/demo-data scripts/demo.sh

# The simulator: replay a bursty parameter-scan scenario and a real trace
# through every policy and print the comparison; plots, JSON and
# per-request schedules land in out/.
sim-demo: build deps
	@mkdir -p $(OUT)
	$(BIN) sim --scenario paramscan --seed 1 --json $(OUT)/paramscan.json --plots $(OUT)/paramscan
	@echo
	$(BIN) sim --trace $(TRACE) --json $(OUT)/sdsc.json --plots $(OUT)/sdsc --schedule $(OUT)/sdsc-schedules
	@echo
	@echo "plots, JSON and schedules: $(OUT)/"

test: deps fmt-check vet
	$(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The larger traces are not in the repository; with ../shared/traces
# present this replays each one as the README's table does.
sim-traces: build
	@mkdir -p $(OUT)
	@for t in $(TRACE) $(SHARED)/KTH-SP2-1996-2.1-cln.swf.gz; do \
		[ -f $$t ] || { echo "skip $$t: not present"; continue; }; \
		$(BIN) sim --trace $$t --quiet --json $(OUT)/$$(basename $$t .swf.gz).json; echo; \
	done

# A tiny bootable test VM image (Debian kernel + busybox) for the libvirt
# host agent; prints its path last. See scripts/testimage/README.md.
testimage:
	scripts/testimage/build.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./fairshare/

clean:
	rm -rf bin $(OUT)
