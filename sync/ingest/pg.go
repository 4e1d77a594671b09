package ingest

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/sync/wire"
)

// migrations are the versioned schema files, NNNN_name.sql, applied in order.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key under which ingesters apply migrations, one at a time.
const migrationLock = 0x6b616f71696e // "kaoqin"

// pgStore is the store in a PostgreSQL database, shared by every ingester of a shared
// subscription group (docs/central.md). A commit locks the rows of the devices it touches
// (SELECT ... FOR UPDATE, in name order, so two ingesters never deadlock on each other), reads
// their chain ends, checks each batch against its stored end (for a batch prepared before the
// transaction, only the link of its first new record to the stored head), inserts the events
// (COPY) and moves the ends, in one transaction. synchronous_commit is left on: an ack follows a
// commit that is on disk.
type pgStore struct {
	pool *pgxpool.Pool

	mu    sync.Mutex
	known map[string]bool // devices whose row exists (a row is never deleted)
}

var _ store = (*pgStore)(nil)

// openPG connects and applies the migrations the database lacks.
func openPG(ctx context.Context, url string) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("ingest: db: %w", err)
	}
	if cfg.MaxConns > 4 {
		cfg.MaxConns = 4 // one writer and a few readers (status, scan)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ingest: db: %w", err)
	}
	s := &pgStore{pool: pool, known: map[string]bool{}}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *pgStore) close() error {
	s.pool.Close()
	return nil
}

// migrate applies, in one transaction under an advisory lock, every migration file whose version
// is not in schema_migrations.
func (s *pgStore) migrate(ctx context.Context) error {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version int PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		have := map[int]bool{}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return err
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return err
			}
			have[v] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, f := range files {
			name := strings.TrimPrefix(f, "migrations/")
			v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
			if err != nil {
				return fmt.Errorf("migration %s: no version number", name)
			}
			if have[v] {
				continue
			}
			sql, err := migrations.ReadFile(f)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", v, name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ingest: db: migrate: %w", err)
	}
	return nil
}

// errFatal marks an error of the store's own making inside a transaction (an invariant broken):
// not worth retrying.
var errFatal = errors.New("ingest: db")

// classify wraps an error that may pass (a connection lost, the server restarting, a deadlock or
// serialization failure) with errUnavailable.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errFatal) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01", pe.Code == "53300", strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"):
			return fmt.Errorf("%w: %w", errUnavailable, err)
		}
		return fmt.Errorf("ingest: db: %w", err)
	}
	return fmt.Errorf("%w: %w", errUnavailable, err) // the connection: refused, reset, closed
}

func i64(n uint64) int64 { return int64(n) }

// pgChain is a device epoch's chain in a commit, and the records it inserts (contiguous from
// first).
type pgChain struct {
	dbEnd chainEnd // the end when the transaction read it
	end   chainEnd // the end as this transaction moves it
	first uint64   // the seq of recs[0]
	recs  []ledger.Record
	cols  []decoded // the columns of recs
}

func (s *pgStore) commit(ctx context.Context, w *write) ([]batchResult, error) {
	results := make([]batchResult, len(w.batches))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The devices touched, registered if new, then locked in name order.
		type reg struct {
			institution string
			key         []byte
		}
		regs := map[string]reg{}
		for _, b := range w.batches {
			if _, ok := regs[b.device]; !ok || regs[b.device].key == nil {
				regs[b.device] = reg{b.institution, b.pub}
			}
		}
		for _, u := range w.updates {
			if _, ok := regs[u.device]; !ok || regs[u.device].key == nil {
				regs[u.device] = reg{u.institution, u.pub}
			}
		}
		names := make([]string, 0, len(regs))
		for n := range regs {
			names = append(names, n)
		}
		sort.Strings(names)
		var newNames, insts []string
		var keys [][]byte
		s.mu.Lock()
		for _, n := range names {
			if !s.known[n] {
				newNames, insts, keys = append(newNames, n), append(insts, regs[n].institution), append(keys, regs[n].key)
			}
		}
		s.mu.Unlock()
		// Register, lock the devices in name order, then read their chains in a statement of its
		// own: under READ COMMITTED it sees every commit of whoever held a lock it waited for (a
		// join in the locking statement would read the chains as they were before the wait). The
		// three statements go in one round trip (a pipeline); the server runs them in order.
		var q0 pgx.Batch
		if len(newNames) > 0 {
			q0.Queue(`INSERT INTO devices (device, institution, public_key)
				SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) ORDER BY 1
				ON CONFLICT (device) DO NOTHING`, newNames, insts, keys)
		}
		q0.Queue("SELECT device, institution, epoch, head_seen, witnessed FROM devices WHERE device = ANY($1) ORDER BY device FOR UPDATE", names)
		q0.Queue("SELECT device, epoch, seq, head FROM chains WHERE device = ANY($1)", names)
		registered := map[string]string{}
		type devRow struct {
			epoch, headSeen uint64
			witnessed       *witness
		}
		rowsOf := map[string]devRow{}
		chains := map[DeviceEpoch]*pgChain{}
		err := func() error {
			br := tx.SendBatch(ctx, &q0)
			defer br.Close()
			if len(newNames) > 0 {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var d, in string
				var ep, hs int64
				var wj []byte
				if err := rows.Scan(&d, &in, &ep, &hs, &wj); err != nil {
					return err
				}
				row := devRow{epoch: uint64(ep), headSeen: uint64(hs)}
				if wj != nil {
					row.witnessed = new(witness)
					if err := json.Unmarshal(wj, row.witnessed); err != nil {
						return fmt.Errorf("ingest: device %q: witnessed head: %w", d, err)
					}
				}
				registered[d], rowsOf[d] = in, row
			}
			if err := rows.Err(); err != nil {
				return err
			}
			rows, err = br.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var d string
				var ep, seq int64
				var head []byte
				if err := rows.Scan(&d, &ep, &seq, &head); err != nil {
					return err
				}
				var e chainEnd
				e.Seq = uint64(seq)
				copy(e.Head[:], head)
				chains[DeviceEpoch{d, uint64(ep)}] = &pgChain{dbEnd: e, end: e}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			return br.Close()
		}()
		if err != nil {
			return err
		}

		type devMove struct{ epoch, headSeen uint64 }
		moves := map[string]*devMove{}
		var alarms []*alarm
		// Signed heads first, as the bbolt store applies updates before batches.
		witnessed := map[string][]byte{}
		for _, u := range w.updates {
			if u.witness == nil {
				continue
			}
			row := rowsOf[u.device]
			keep, a := witnessHead(u.device, row.witnessed, u.witness)
			if a != nil {
				alarms = append(alarms, a)
			}
			if keep != row.witnessed {
				row.witnessed = keep
				rowsOf[u.device] = row
				if witnessed[u.device], err = json.Marshal(keep); err != nil {
					return err
				}
			}
		}
		for i := range w.batches {
			b := &w.batches[i]
			if registered[b.device] != b.institution {
				results[i] = batchResult{outcome: refused,
					err: fmt.Errorf("device registered under institution %s, batch under %s", registered[b.device], b.institution)}
				continue
			}
			if b.epoch > math.MaxInt64 || b.last() > math.MaxInt64 {
				results[i] = batchResult{outcome: refused, err: fmt.Errorf("epoch %d or seq %d beyond what the database holds", b.epoch, b.last())}
				continue
			}
			de := DeviceEpoch{b.device, b.epoch}
			c := chains[de]
			if c == nil {
				c = &pgChain{}
				chains[de] = c
			}
			x, err := extend(c.end, b, func(from, to uint64) ([]ledger.Record, error) {
				var out []ledger.Record
				if from <= c.dbEnd.Seq {
					rows, err := tx.Query(ctx, "SELECT record FROM events WHERE device = $1 AND epoch = $2 AND seq BETWEEN $3 AND $4 ORDER BY seq",
						b.device, i64(b.epoch), i64(from), i64(min(to, c.dbEnd.Seq)))
					if err != nil {
						return nil, err
					}
					for rows.Next() {
						var r []byte
						if err := rows.Scan(&r); err != nil {
							return nil, err
						}
						out = append(out, r)
					}
					if err := rows.Err(); err != nil {
						return nil, err
					}
				}
				for seq := max(from, c.dbEnd.Seq+1); seq <= to; seq++ { // inserted by this transaction
					out = append(out, c.recs[seq-c.first])
				}
				return out, nil
			})
			if err != nil {
				return err
			}
			results[i] = x.res
			// The device row changes only for a newer epoch, or a head beyond what it holds
			// (a batch ahead of a gap): a drain writes no device row.
			row := rowsOf[b.device]
			if b.epoch > row.epoch && x.res.outcome == stored || b.last() > row.headSeen && x.res.outcome == gap {
				m := moves[b.device]
				if m == nil {
					m = &devMove{}
					moves[b.device] = m
				}
				if x.res.outcome == stored {
					m.epoch = max(m.epoch, b.epoch)
				} else {
					m.headSeen = max(m.headSeen, b.last())
				}
			}
			if x.alarm == nil {
				x.alarm = witnessStored(rowsOf[b.device].witnessed, b, &x)
			}
			if x.alarm != nil {
				alarms = append(alarms, x.alarm)
			}
			if x.res.outcome == stored {
				if len(c.recs) == 0 {
					c.first = x.first
				}
				c.recs = append(c.recs, x.recs...)
				if x.cols != nil {
					c.cols = append(c.cols, x.cols...)
				} else {
					for _, r := range x.recs {
						c.cols = append(c.cols, decode(r))
					}
				}
				c.end = x.res.end
			}
		}

		// The new events and their evidence, then the chain ends.
		var evRows, phRows [][]any
		var chDev []string
		var chEp, chSeq []int64
		var chHead [][]byte
		for de, c := range chains {
			if len(c.recs) == 0 {
				continue
			}
			inst := registered[de.Device]
			for k, r := range c.recs {
				seq := i64(c.first + uint64(k))
				d := &c.cols[k]
				var t any
				if !d.wall.IsZero() {
					t = d.wall
				}
				evRows = append(evRows, []any{de.Device, i64(de.Epoch), seq, inst, d.kind, nullable(d.trainee),
					nullable(d.session), nullable(d.method), d.flags, t, []byte(r)})
				seen := map[string]bool{}
				for _, p := range d.evidence {
					if seen[p.SHA256] {
						continue
					}
					seen[p.SHA256] = true
					phRows = append(phRows, []any{de.Device, i64(de.Epoch), seq, p.SHA256, p.Kind, p.Size})
				}
			}
			chDev, chEp, chSeq, chHead = append(chDev, de.Device), append(chEp, i64(de.Epoch)), append(chSeq, i64(c.end.Seq)), append(chHead, c.end.Head[:])
		}
		if len(evRows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
				[]string{"device", "epoch", "seq", "institution", "kind", "trainee", "session", "method", "flags", "time", "record"},
				pgx.CopyFromRows(evRows)); err != nil {
				return err
			}
		}
		if len(phRows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"evidence"}, []string{"device", "epoch", "seq", "sha256", "kind", "size"},
				pgx.CopyFromRows(phRows)); err != nil {
				return err
			}
		}
		var q pgx.Batch
		if len(chDev) > 0 {
			q.Queue(`INSERT INTO chains (device, epoch, seq, head) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
				ON CONFLICT (device, epoch) DO UPDATE SET seq = EXCLUDED.seq, head = EXCLUDED.head, updated = now()`, chDev, chEp, chSeq, chHead)
		}
		for _, a := range alarms {
			q.Queue("INSERT INTO alarms (device, epoch, seq, kind, held, received, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
				a.device, i64(min(a.epoch, math.MaxInt64)), i64(min(a.seq, math.MaxInt64)), a.kind, a.held, a.received, a.detail)
		}
		// Every device row that changes, in one statement.
		var (
			uDev, uErr        []string
			uSeen             []*time.Time
			uState, uApplied  [][]byte
			uWitnessed        [][]byte
			uEpoch, uHeadSeen []int64
		)
		for _, u := range w.updates {
			var state, applied []byte
			if u.state != nil {
				if state, err = json.Marshal(u.state); err != nil {
					return err
				}
			}
			if u.applied != nil {
				if applied, err = json.Marshal(map[string]*wire.Applied{u.applied.Dataset: u.applied}); err != nil {
					return err
				}
			}
			var seen *time.Time
			if !u.seen.IsZero() {
				seen = &u.seen
			} else if u.state != nil {
				now := time.Now()
				seen = &now
			}
			var headSeen, epoch uint64
			if m := moves[u.device]; m != nil {
				headSeen, epoch = m.headSeen, m.epoch
				delete(moves, u.device)
			}
			if u.state != nil {
				headSeen = max(headSeen, u.state.HeadSeq)
			}
			uDev, uSeen, uState, uApplied, uErr = append(uDev, u.device), append(uSeen, seen), append(uState, state), append(uApplied, applied), append(uErr, u.lastError)
			uWitnessed = append(uWitnessed, witnessed[u.device])
			uEpoch, uHeadSeen = append(uEpoch, i64(min(epoch, math.MaxInt64))), append(uHeadSeen, i64(min(headSeen, math.MaxInt64)))
		}
		for d, m := range moves {
			uDev, uSeen, uState, uApplied, uErr = append(uDev, d), append(uSeen, nil), append(uState, nil), append(uApplied, nil), append(uErr, "")
			uWitnessed = append(uWitnessed, nil)
			uEpoch, uHeadSeen = append(uEpoch, i64(m.epoch)), append(uHeadSeen, i64(min(m.headSeen, math.MaxInt64)))
		}
		if len(uDev) > 0 {
			q.Queue(`UPDATE devices d SET last_seen = greatest(d.last_seen, u.seen),
				state = CASE WHEN u.state IS NOT NULL AND u.seen >= coalesce(d.state_at, '-infinity') THEN u.state ELSE d.state END,
				state_at = CASE WHEN u.state IS NOT NULL AND u.seen >= coalesce(d.state_at, '-infinity') THEN u.seen ELSE d.state_at END,
				applied = d.applied || coalesce(u.applied, '{}'), last_error = coalesce(nullif(u.err, ''), d.last_error),
				epoch = greatest(d.epoch, u.epoch), head_seen = greatest(d.head_seen, u.head_seen),
				witnessed = coalesce(u.witnessed, d.witnessed)
				FROM unnest($1::text[], $2::timestamptz[], $3::jsonb[], $4::jsonb[], $5::text[], $6::bigint[], $7::bigint[], $8::jsonb[])
					AS u(device, seen, state, applied, err, epoch, head_seen, witnessed)
				WHERE d.device = u.device`, uDev, uSeen, uState, uApplied, uErr, uEpoch, uHeadSeen, uWitnessed)
		}
		if q.Len() > 0 {
			if err := tx.SendBatch(ctx, &q).Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	s.mu.Lock()
	for _, b := range w.batches {
		s.known[b.device] = true
	}
	for _, u := range w.updates {
		s.known[u.device] = true
	}
	s.mu.Unlock()
	return results, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *pgStore) chainEnds(ctx context.Context, des []DeviceEpoch) (map[DeviceEpoch]uint64, error) {
	devs, eps := make([]string, len(des)), make([]int64, len(des))
	for i, de := range des {
		devs[i], eps[i] = de.Device, i64(min(de.Epoch, math.MaxInt64))
	}
	rows, err := s.pool.Query(ctx, `SELECT c.device, c.epoch, c.seq FROM chains c
		JOIN unnest($1::text[], $2::bigint[]) AS w(device, epoch) ON c.device = w.device AND c.epoch = w.epoch`, devs, eps)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	out := make(map[DeviceEpoch]uint64, len(des))
	for rows.Next() {
		var d string
		var ep, seq int64
		if err := rows.Scan(&d, &ep, &seq); err != nil {
			return nil, classify(err)
		}
		out[DeviceEpoch{d, uint64(ep)}] = uint64(seq)
	}
	return out, classify(rows.Err())
}

func (s *pgStore) devices(ctx context.Context) (map[string]*storedDevice, error) {
	out := map[string]*storedDevice{}
	rows, err := s.pool.Query(ctx, `SELECT device, institution, epoch, head_seen, last_seen, state, applied, last_error, witnessed FROM devices`)
	if err != nil {
		return nil, classify(err)
	}
	for rows.Next() {
		var name string
		var epoch, headSeen int64
		var lastSeen *time.Time
		var state, applied, witnessed []byte
		sd := &storedDevice{chains: map[uint64]chainEnd{}}
		if err := rows.Scan(&name, &sd.rec.Institution, &epoch, &headSeen, &lastSeen, &state, &applied, &sd.rec.LastError, &witnessed); err != nil {
			return nil, classify(err)
		}
		sd.rec.Epoch, sd.rec.HeadSeen = uint64(epoch), uint64(headSeen)
		if lastSeen != nil {
			sd.rec.LastSeen = *lastSeen
		}
		if state != nil {
			sd.rec.State = new(wire.State)
			if err := json.Unmarshal(state, sd.rec.State); err != nil {
				return nil, fmt.Errorf("ingest: db: device %s: state: %w", name, err)
			}
		}
		if witnessed != nil {
			sd.rec.Witnessed = new(witness)
			if err := json.Unmarshal(witnessed, sd.rec.Witnessed); err != nil {
				return nil, fmt.Errorf("ingest: db: device %s: witnessed: %w", name, err)
			}
		}
		if len(applied) > 2 {
			if err := json.Unmarshal(applied, &sd.rec.Applied); err != nil {
				return nil, fmt.Errorf("ingest: db: device %s: applied: %w", name, err)
			}
		}
		out[name] = sd
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	rows, err = s.pool.Query(ctx, "SELECT device, epoch, seq, head FROM chains")
	if err != nil {
		return nil, classify(err)
	}
	for rows.Next() {
		var d string
		var ep, seq int64
		var head []byte
		if err := rows.Scan(&d, &ep, &seq, &head); err != nil {
			return nil, classify(err)
		}
		var e chainEnd
		e.Seq = uint64(seq)
		copy(e.Head[:], head)
		if sd := out[d]; sd != nil {
			sd.chains[uint64(ep)] = e
			if uint64(ep) == sd.rec.Epoch {
				sd.rec.HeadSeen = max(sd.rec.HeadSeen, e.Seq)
			}
		}
	}
	return out, classify(rows.Err())
}

func (s *pgStore) command(ctx context.Context, institution string, c *wire.Command) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "LOCK TABLE commands IN EXCLUSIVE MODE"); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, "SELECT greatest($1::bigint, coalesce(max(id), 0) + 1) FROM commands", time.Now().UnixMicro()).Scan(&id); err != nil {
			return err
		}
		c.ID = uint64(id)
		_, err := tx.Exec(ctx, "INSERT INTO commands (id, device, institution, cmd, epoch, from_seq, issued) VALUES ($1, $2, $3, $4, $5, $6, $7)",
			id, c.Device, institution, c.Cmd, i64(min(c.Epoch, math.MaxInt64)), i64(min(c.FromSeq, math.MaxInt64)), c.Issued)
		return err
	})
	return classify(err)
}

func (s *pgStore) dataset(ctx context.Context, ds *dataset) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO datasets (name, version, sha256, size, content) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name, version) DO NOTHING`, ds.name, i64(ds.version), ds.sha, len(ds.content), ds.content)
	return classify(err)
}

func (s *pgStore) scan(ctx context.Context, fn func(device string, epoch, seq uint64, rec ledger.Record) error) error {
	rows, err := s.pool.Query(ctx, "SELECT device, epoch, seq, record FROM events ORDER BY device, epoch, seq")
	if err != nil {
		return classify(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var ep, seq int64
		var r []byte
		if err := rows.Scan(&d, &ep, &seq, &r); err != nil {
			return classify(err)
		}
		if err := fn(d, uint64(ep), uint64(seq), r); err != nil {
			return err
		}
	}
	return classify(rows.Err())
}

func (s *pgStore) alarms(ctx context.Context) ([]alarm, error) {
	rows, err := s.pool.Query(ctx, "SELECT device, epoch, seq, kind, held, received, detail FROM alarms ORDER BY id")
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	var out []alarm
	for rows.Next() {
		var a alarm
		var ep, seq int64
		if err := rows.Scan(&a.device, &ep, &seq, &a.kind, &a.held, &a.received, &a.detail); err != nil {
			return nil, classify(err)
		}
		a.epoch, a.seq = uint64(ep), uint64(seq)
		out = append(out, a)
	}
	return out, classify(rows.Err())
}
