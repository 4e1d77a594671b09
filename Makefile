# kaoqin: the classroom attendance agent. `make run` and `make test` each work on a fresh Debian
# machine with Go as the only command typed: `deps` installs what is missing first.

GO        ?= go
BIN       := bin/kaoqin
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/kaoqin/kaoqin/agent.Version=$(VERSION)
DEB_PKGS  := mosquitto systemd
# The inspector's pages are tested in a headless browser, with a font that has Chinese glyphs.
DEB_PKGS  += chromium fonts-wqy-microhei
FUZZTIME  ?= 60s
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STATICCHECK_VERSION := v0.8.2

.PHONY: all deps build cross test run bench fuzz lint clean

all: build

# Debian packages the tests and the demo need (mosquitto for the MQTT tests and `make run`), and
# the Go modules. Nothing is installed that is already there.
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

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./agent/cmd/kaoqin

# Classroom boxes are often ARM: the agent must build for them without cgo.
cross: deps
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -ldflags "$(LDFLAGS)" -o bin/kaoqin-linux-arm64 ./agent/cmd/kaoqin
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -ldflags "$(LDFLAGS)" -o bin/kaoqin-linux-armv7 ./agent/cmd/kaoqin

# Every test with the race detector, against real bbolt files, a real mosquitto broker and
# emulated devices on pseudo-terminals; the fuzz targets run their seed corpora. The ARM builds
# are part of it.
test: deps cross
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...

# The demonstration classroom on this machine: mosquitto, the reference ingester, the agent, an
# emulated fingerprint module and an emulated QR voucher scanner (configs/demo.sh). Ctrl-C stops it.
run: build
	BIN=$(BIN) ./configs/demo.sh

# Each performance target beside its baseline measured in the same run (docs/BENCHMARKS.md).
bench: deps
	@echo "== ledger: durable append vs bare bbolt Update (target ratio >= 0.8); verify of 1,000,000 events (target >= 200,000 events/s)"
	$(GO) test -run '^$$' -bench 'Append' -benchtime 2000x ./agent/store
	$(GO) test -run '^$$' -bench 'Verify$$' -benchtime 3x -timeout 30m ./agent/store
	@echo "== ledger: verify --all-signatures (every event's own signature), 100,000 events"
	$(GO) test -run '^$$' -bench 'VerifyAllSignatures' -benchtime 1x -timeout 30m ./agent/store
	@echo "== rules: Decide with a 10,000-trainee roster (target < 5 us) vs the bare map lookups"
	$(GO) test -run '^$$' -bench 'Decide|MapLookup' -benchtime 2s ./agent/checkin
	@echo "== fingerprint: one identification vs a bare request/response over the same pty"
	$(GO) test -run '^$$' -bench 'Identify|BareRoundTrip' -benchtime 2s ./drivers/zfm
	@echo "== sync: a 100,000-event drain through mosquitto to the ingester and back (and the agent's memory) vs a bare paho publisher (target >= 1.0x)"
	$(GO) test -run '^$$' -bench 'Drain' -benchtime 5x -timeout 20m ./sync/uplink
	@echo "== sync: Append to ack at 10 events/s, p50 and p99"
	$(GO) test -run '^$$' -bench 'AckLatency' -benchtime 300x -timeout 20m ./sync/uplink
	@echo "== zkpush: a 10,000-line ATTLOG backlog through the PUSH server vs bare decoding; 20 terminals polling every 2 s vs idle (CPU, getrusage)"
	$(GO) test -run '^$$' -bench 'Backlog10k' -benchtime 5x ./drivers/zkpush
	$(GO) test -run '^$$' -bench 'Polling20' -benchtime 1x ./drivers/zkpush
	@echo "== reports: today and hours for a 200-trainee, 4-session day (target < 50 ms) vs a bare read of the same events"
	$(GO) test -run '^$$' -bench 'TodayAndHours' -benchtime 50x ./agent/report
	@echo "== export: a 100,000-event bundle vs the CSV export alone (target ratio >= 0.5)"
	$(GO) test -run '^$$' -bench 'Bundle' -benchtime 3x -timeout 20m ./agent/export
	@echo "== inspector: the today and hours pages (store read, report, HTML) for a 200-trainee, 4-session day (target < 50 ms) vs a bare read of the same events from the store"
	$(GO) test -run '^$$' -bench 'InspectorPages' -benchtime 20x ./agent/inspect

# Each fuzz target for FUZZTIME (default 60s); crashers land in testdata/fuzz and fail `make test`.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list 'Fuzz.*' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$$($(GO) env GOPATH)/bin/staticcheck ./...

clean:
	rm -rf bin run
