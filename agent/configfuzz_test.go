package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfig: any bytes as a config file give a config or an error, never a panic, and an
// accepted config has the required keys.
func FuzzConfig(f *testing.F) {
	for _, p := range []string{"../configs/agent.example.toml", "../configs/demo.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("device = \"a\"\ninstitution = \"0001\"\n[[source]]\nname = \"x\"\nkind = \"zfm\"\npath = \"/dev/x\"\n"))
	f.Add([]byte("[a.b]\nc = 1\n[[d]]\n[[d]]\ne = [1,2]\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc []byte) {
		path := filepath.Join(dir, "agent.toml")
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(path)
		if err != nil {
			return
		}
		if cfg.Device == "" || len(cfg.Institution) != 4 {
			t.Fatalf("accepted a config without device or institution: %q %q", cfg.Device, cfg.Institution)
		}
	})
}
