package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/drivers"
	"github.com/kaoqin/kaoqin/drivers/driverstest"
	hikemu "github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
	lineemu "github.com/kaoqin/kaoqin/drivers/lineterm/emu"
	zfmemu "github.com/kaoqin/kaoqin/drivers/zfm/emu"
	zkemu "github.com/kaoqin/kaoqin/drivers/zkpush/emu"
)

// Every file in configs/ loads with the code that reads it. The TOML configs are loaded from a
// copy of the tree in which the key files they name exist, as `make run` creates them.
func TestEveryFileInConfigsLoads(t *testing.T) {
	files, err := filepath.Glob("../configs/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in configs/: %v", err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "configs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ledger.GenerateKeyFiles(filepath.Join(root, "run/demo/keys"), "central"); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasSuffix(name, ".toml"):
				copyTo := filepath.Join(root, "configs", name)
				if err := os.WriteFile(copyTo, b, 0o644); err != nil {
					t.Fatal(err)
				}
				cfg, err := agent.LoadConfig(copyTo)
				if err != nil {
					t.Fatalf("%s does not load: %v", name, err)
				}
				if cfg.Device == "" || len(cfg.Sources) == 0 {
					t.Errorf("%s: device %q, %d sources; want a device and sources", name, cfg.Device, len(cfg.Sources))
				}
			case name == "demo-zfm.script":
				sc, err := zfmemu.ParseScript(strings.NewReader(string(b)))
				if err != nil || len(sc.Steps) == 0 {
					t.Fatalf("%s: %d steps, %v", name, len(sc.Steps), err)
				}
			case name == "demo-qr.script":
				if _, err := lineemu.ParseScript(strings.NewReader(string(b))); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			case name == "demo-hik.script":
				if steps, err := hikemu.ParseScript(strings.NewReader(string(b))); err != nil || len(steps) == 0 {
					t.Fatalf("%s: %d steps, %v", name, len(steps), err)
				}
			case name == "demo-zkpush.script":
				// Played against a server that acknowledges everything: every step parses and runs.
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost {
						fmt.Fprint(w, "OK: 1")
						return
					}
					fmt.Fprint(w, "OK")
				}))
				defer srv.Close()
				term := zkemu.New(zkemu.Config{Server: srv.URL, Serial: "DEMOZK0001", Log: slog.New(slog.DiscardHandler)})
				if err := term.Play(context.Background(), strings.NewReader(string(b))); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			case name == "demo.sh":
				if !strings.Contains(string(b), "configs/demo.toml") || !strings.HasPrefix(string(b), "#!/usr/bin/env bash") {
					t.Errorf("demo.sh does not run configs/demo.toml")
				}
			case strings.HasPrefix(name, "mosquitto"):
				// Run by a real mosquitto: sync/internal/brokertest (the example config) and sync/e2e (the ACL).
			default:
				t.Errorf("no test loads configs/%s: add one here", name)
			}
		})
	}
}

// The example config documents every key the decoder knows: each key of the Config structs
// appears in agent.example.toml.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../configs/agent.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	// Every driver kind a deployed binary has (the test-only driverstest is not one).
	var kinds []string
	for _, k := range drivers.Kinds() {
		if k != driverstest.Kind {
			kinds = append(kinds, k)
		}
	}
	for _, key := range agent.ConfigKeys(kinds...) {
		leaf := key[strings.LastIndex(key, ".")+1:]
		// A driver a classroom may not have is documented in a commented-out [[source]].
		if !strings.Contains(doc, "\n"+leaf+" =") && !strings.Contains(doc, "\n# "+leaf+" =") &&
			!strings.Contains(doc, "["+key+"]") && !strings.Contains(doc, "[["+key+"]]") {
			t.Errorf("key %s is not documented in configs/agent.example.toml", key)
		}
	}
}
