package main

import (
	"context"
	"io"
	"log/slog"

	hikemu "github.com/kaoqin/kaoqin/drivers/hikisapi/emu"
)

// emulateHikisapi serves an emulated Hikvision face terminal's ISAPI on --listen and plays a
// script of punches and faults (go doc github.com/kaoqin/kaoqin/drivers/hikisapi/emu).
func emulateHikisapi(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("emulate hikisapi", "emulate hikisapi --listen ADDR [--script FILE] [--user U --password P] [--push multipart|json|xml]", stderr)
	listen := fs.String("listen", "127.0.0.1:8091", "address the terminal's ISAPI listens on")
	scriptPath := fs.String("script", "", "script of punches and faults to play")
	serial := fs.String("serial", "", "the terminal's serial number (default DS-K1T341AM20231120V030700ENE00000001)")
	user := fs.String("user", "admin", "ISAPI user")
	pass := fs.String("password", "12345abc", "ISAPI password")
	push := fs.String("push", hikemu.PushMultipart, "how events are posted to httpHosts: multipart, multipart-no-boundary, json or xml")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch *push {
	case hikemu.PushMultipart, hikemu.PushNoBoundary, hikemu.PushJSON, hikemu.PushXML:
	default:
		return usagef("emulate hikisapi: --push %q: want multipart, multipart-no-boundary, json or xml", *push)
	}
	script, closeScript, err := openScript(*scriptPath)
	if err != nil {
		return err
	}
	defer closeScript()
	log := newLogger(stderr, slog.LevelInfo).With("emulator", "hikisapi", "listen", *listen)
	return hikemu.Run(ctx, *listen, hikemu.Config{Serial: *serial, User: *user, Password: *pass, PushFormat: *push}, script, log)
}
