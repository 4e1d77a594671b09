#!/usr/bin/env bash
# The demonstration classroom of `make run`, on one machine: a mosquitto broker on loopback, the
# reference central ingester, the agent with configs/demo.toml, an emulated fingerprint module, an
# emulated QR voucher scanner, an emulated ZKTeco face terminal and an emulated Hikvision face
# terminal, each playing its configs/demo-*.script. Sign-ins flow from the emulated
# reader through the agent's ledger to the ingester, which acknowledges them.
#
# State lives in run/demo/ (delete it to start over). Ctrl-C stops everything. With
# DEMO_SECONDS=N the demo stops by itself after N seconds and exits non-zero unless the ingester
# acknowledged every event the agent recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/kaoqin}
D=run/demo
PORT=18830
CFG=configs/demo.toml
mkdir -p "$D/state/keys" "$D/keys" "$D/ingest/devices" "$D/mosquitto"

pids=()
cleanup() {
	trap - EXIT INT TERM
	for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

[ -f "$D/state/keys/device.key" ] || "$BIN" keygen --out "$D/state/keys" >/dev/null
[ -f "$D/keys/central.key" ] || "$BIN" keygen --out "$D/keys" --name central >/dev/null
mkdir -p "$D/ingest/devices/0001"
cp "$D/state/keys/device.pub" "$D/ingest/devices/0001/demo-r101.pub" # filed under its institution: pinned to it

cat > "$D/mosquitto.conf" <<CONF
listener $PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
user $(id -un)
persistence true
persistence_location $PWD/$D/mosquitto/
log_dest file $PWD/$D/mosquitto.log
CONF
mosquitto -c "$D/mosquitto.conf" & pids+=($!)

INGEST=(--broker "tcp://127.0.0.1:$PORT" --db "$D/ingest/ingest.db" --device-keys "$D/ingest/devices"
	--central-key "$D/keys/central.key" --datasets "$D/ingest/datasets")
"$BIN" ingest run "${INGEST[@]}" 2>"$D/ingest.log" & pids+=($!)

# The room camera replays the shared photo set's group photo (run/demo/room holds a link to it;
# the photos are never copied), and three trainees' faces are enrolled from the shared photos
# into the roster: T001 is one of the people in the group photo.
FACES=${KAOQIN_TESTDATA:+$KAOQIN_TESTDATA/faces}
for up in .. ../.. ../../..; do
	[ -n "$FACES" ] || { [ -d "$up/shared/testdata/faces" ] && FACES=$(cd "$up/shared/testdata/faces" && pwd); }
done
mkdir -p "$D/room"
ROSTER_FACES=()
if [ -n "$FACES" ] && [ -f "$FACES/group/pristin.jpg" ]; then
	ln -sfn "$FACES/group/pristin.jpg" "$D/room/pristin.jpg"
	if [ ! -s "$D/faces.json" ]; then
		rm -f "$D/faces.json"
		"$BIN" face enroll --models .cache/face-models --jitter 5 --trainee T001 --out "$D/faces.json" "$FACES/unknown/rena.jpg" &&
			"$BIN" face enroll --models .cache/face-models --jitter 5 --trainee T002 --out "$D/faces.json" "$FACES/enroll/bona.jpg" &&
			"$BIN" face enroll --models .cache/face-models --jitter 5 --trainee T003 --out "$D/faces.json" "$FACES/enroll/chaeyeon.jpg" ||
			{ echo "demo: face enrolment failed; the room camera runs without templates"; rm -f "$D/faces.json"; }
	fi
	[ -s "$D/faces.json" ] && ROSTER_FACES=(--faces "$D/faces.json")
else
	echo "demo: the shared photo set (shared/testdata/faces, or \$KAOQIN_TESTDATA) is not here: the room camera has nothing to replay"
fi

# Today's roster (a session open now), signed for the box and imported on it (the way a box
# without a network gets it, on a USB stick), and published centrally. The demo's operator
# accounts and their PINs are in agent/demo (张管理 administration 112233, 王老师 teaching 246810).
"$BIN" emulate roster --out "$D/roster.json" --trainees 5 "${ROSTER_FACES[@]}"
"$BIN" ingest publish "${INGEST[@]}" --dataset roster --out "$D/roster.bundle" --device demo-r101 "$D/roster.json"
KAOQIN_SECRET=112233 "$BIN" roster import --config "$CFG" --operator "张管理" "$D/roster.bundle" || true
"$BIN" ingest publish "${INGEST[@]}" --dataset roster "$D/roster.json" || true

"$BIN" emulate zfm --link "$D/zfm0" --script configs/demo-zfm.script 2>"$D/zfm.log" & pids+=($!)
"$BIN" emulate lineterm --link "$D/qr0" --framing crlf --script configs/demo-qr.script 2>"$D/qr.log" & pids+=($!)
"$BIN" emulate zkpush --server http://127.0.0.1:18831 --serial DEMOZK0001 --script configs/demo-zkpush.script 2>"$D/zkpush.log" & pids+=($!)
"$BIN" emulate hikisapi --listen 127.0.0.1:18833 --script configs/demo-hik.script 2>"$D/hik.log" & pids+=($!)
"$BIN" run --config "$CFG" 2>&1 | tee "$D/agent.log" & pids+=($!)

sleep 4
echo "== a manual sign-in (the override path): T004's finger cannot be read"
KAOQIN_SECRET=246810 "$BIN" signin --config "$CFG" --trainee T004 --operator "王老师" --reason "finger too dry to read" || true
echo "== the inspector view: http://127.0.0.1:8088/   the log: $BIN log --config $CFG"
# The random spot checks come at unpredictable times in the session; the demo asks for one now,
# once the first sign-ins are in (the central system's spotcheck command does the same).
sleep 12
echo "== a spot check by the room camera: the headcount against the sign-ins"
"$BIN" spotcheck --config "$CFG" || true

show() {
	echo "== kaoqin log"
	"$BIN" log --config "$CFG" || true
	echo "== kaoqin ingest status (the central side)"
	"$BIN" ingest status "${INGEST[@]}" || true
	echo "== evidence photos held centrally (spot-check frames and face crops, acknowledged by sha256): $(find "$D/ingest/datasets/evidence" -name '*.jpg' 2>/dev/null | wc -l)"
}

if [ -n "${DEMO_SECONDS:-}" ]; then
	sleep "$DEMO_SECONDS"
	show
	status=$("$BIN" status --config "$CFG" --json)
	head=$(echo "$status" | sed -n 's/.*"head": \([0-9]*\).*/\1/p')
	acked=$(echo "$status" | sed -n 's/.*"acked": \([0-9]*\).*/\1/p')
	echo "== agent head $head, acknowledged centrally $acked"
	[ -n "$head" ] && [ "$head" = "$acked" ]
	exit $?
fi
while true; do sleep 30; show; done
