package zkpush

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Command states: the server queues a command (pending), hands it out on a poll (sent), and the
// terminal reports its result (done).
const (
	statePending = "pending"
	stateSent    = "sent"
	stateDone    = "done"
)

// queued is one command of a terminal's queue as kept in its bbolt file.
type queued struct {
	ID     string    `json:"id"`
	Text   string    `json:"text"` // the command as the terminal is sent it, names in UTF-8
	PIN    string    `json:"pin,omitempty"`
	State  string    `json:"state"`
	Return int       `json:"return"`
	Queued time.Time `json:"queued"`
	Sent   time.Time `json:"sent,omitzero"`
	Tries  int       `json:"tries,omitempty"`
	Done   time.Time `json:"done,omitzero"`
}

var (
	bucketCmds  = []byte("commands") // id (8-byte big-endian sequence) -> queued JSON
	bucketOpen  = []byte("open")     // ids of the pending and sent commands: a poll reads only these
	bucketUsers = []byte("users")    // PIN -> name: the users kaoqin has put on the terminal
	bucketMeta  = []byte("meta")     // "address" -> the terminal's remote address
	bucketGone  = []byte("gone")     // PIN -> when a delete was queued for a user kaoqin never added
)

// keepDone is how long a finished command stays in the file for inspection.
const keepDone = 7 * 24 * time.Hour

// queue is one terminal's command queue and the state kaoqin keeps about it, in a bbolt file.
type queue struct{ db *bolt.DB }

func openQueue(path string) (*queue, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("zkpush: state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketCmds, bucketOpen, bucketUsers, bucketMeta, bucketGone} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("zkpush: state %s: %w", path, err)
	}
	return &queue{db: db}, nil
}

func (q *queue) close() error { return q.db.Close() }

func idKey(id string) ([]byte, bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, false
	}
	return binary.BigEndian.AppendUint64(nil, n), true
}

// change is one user to put on the terminal (Name set) or take off it (del).
type change struct {
	PIN, Name string
	del       bool
}

// enqueue queues the commands for cs and records the terminal's users as they will be once the
// commands are done, in one transaction. It returns the number of commands queued.
func (q *queue) enqueue(cs []change, now time.Time) (int, error) {
	n := 0
	err := q.db.Update(func(tx *bolt.Tx) error {
		cmds, users := tx.Bucket(bucketCmds), tx.Bucket(bucketUsers)
		pruneDone(cmds, now)
		for _, c := range cs {
			seq, err := cmds.NextSequence()
			if err != nil {
				return err
			}
			e := queued{ID: strconv.FormatUint(seq, 10), PIN: c.PIN, State: statePending, Queued: now}
			gone := tx.Bucket(bucketGone)
			if c.del {
				e.Text = "DATA DELETE USERINFO PIN=" + c.PIN
				if err = users.Delete([]byte(c.PIN)); err == nil {
					err = gone.Put([]byte(c.PIN), []byte(now.Format(time.RFC3339)))
				}
			} else {
				e.Text = "DATA UPDATE USERINFO PIN=" + c.PIN + "\tName=" + c.Name + "\tPri=0\tPasswd=\tCard=\tGrp=1"
				if err = users.Put([]byte(c.PIN), []byte(c.Name)); err == nil {
					err = gone.Delete([]byte(c.PIN))
				}
			}
			if err != nil {
				return err
			}
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			k := binary.BigEndian.AppendUint64(nil, seq)
			if err := cmds.Put(k, v); err != nil {
				return err
			}
			if err := tx.Bucket(bucketOpen).Put(k, nil); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("zkpush: queue: %w", err)
	}
	return n, nil
}

func pruneDone(cmds *bolt.Bucket, now time.Time) {
	var old [][]byte
	_ = cmds.ForEach(func(k, v []byte) error {
		var e queued
		if json.Unmarshal(v, &e) == nil && e.State == stateDone && now.Sub(e.Done) > keepDone {
			old = append(old, append([]byte(nil), k...))
		}
		return nil
	})
	for _, k := range old {
		if cmds.Delete(k) != nil {
			return // the transaction fails on its own; pruning is best effort
		}
	}
}

// users returns the terminal's users as kaoqin has commanded them (PIN -> name), and the PINs
// it has already queued a delete for.
func (q *queue) users() (have map[string]string, gone map[string]bool, err error) {
	have, gone = map[string]string{}, map[string]bool{}
	err = q.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			have[string(k)] = string(v)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketGone).ForEach(func(k, _ []byte) error {
			gone[string(k)] = true
			return nil
		})
	})
	return have, gone, err
}

// take hands out up to max commands for a poll, in queue order: the pending ones, and the sent
// ones whose result has not come back within resend (the terminal rebooted, or the reply was
// lost). They are marked sent.
func (q *queue) take(max int, now time.Time, resend time.Duration) ([]queued, error) {
	due := func(e queued) bool {
		return e.State == statePending || (e.State == stateSent && now.Sub(e.Sent) >= resend)
	}
	// Most polls find nothing due: find out in a read transaction, so that an idle terminal's
	// polls write nothing to the flash.
	found := false
	err := q.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCmds)
		return tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
			var e queued
			if err := json.Unmarshal(b.Get(k), &e); err != nil {
				return err
			}
			found = found || due(e)
			return nil
		})
	})
	if err != nil || !found {
		return nil, err
	}
	var out []queued
	err = q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCmds)
		c := tx.Bucket(bucketOpen).Cursor()
		for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
			var e queued
			if err := json.Unmarshal(b.Get(k), &e); err != nil {
				return err
			}
			if due(e) {
				e.State, e.Sent = stateSent, now
				e.Tries++
				nv, err := json.Marshal(e)
				if err != nil {
					return err
				}
				if err := b.Put(k, nv); err != nil {
					return err
				}
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("zkpush: queue: %w", err)
	}
	return out, nil
}

// finish records a command's result. It reports false for an id the queue does not hold.
func (q *queue) finish(id string, ret int, now time.Time) (queued, bool, error) {
	k, ok := idKey(id)
	if !ok {
		return queued{}, false, nil
	}
	var e queued
	found := false
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCmds)
		v := b.Get(k)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		found = true
		e.State, e.Return, e.Done = stateDone, ret, now
		nv, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketOpen).Delete(k); err != nil {
			return err
		}
		return b.Put(k, nv)
	})
	if err != nil {
		return queued{}, false, fmt.Errorf("zkpush: queue: %w", err)
	}
	return e, found, nil
}

// counts returns how many commands are pending and sent.
func (q *queue) counts() (pending, sent int, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCmds)
		return tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
			var e queued
			if err := json.Unmarshal(b.Get(k), &e); err != nil {
				return err
			}
			switch e.State {
			case statePending:
				pending++
			case stateSent:
				sent++
			}
			return nil
		})
	})
	return pending, sent, err
}

// all lists every command kept, in queue order (for tests and inspection).
func (q *queue) all() ([]queued, error) {
	var out []queued
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCmds).ForEach(func(_, v []byte) error {
			var e queued
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// meta reads and writes one value of the meta bucket.
func (q *queue) meta(key string) (string, error) {
	var v string
	err := q.db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

func (q *queue) setMeta(key, value string) error {
	return q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), []byte(value))
	})
}
