package zfm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/kaoqin/kaoqin/drivers"
)

// SyncReport says what SyncTemplates did to the module's library.
type SyncReport struct {
	Capacity int   // library pages, as the module reports
	Kept     int   // roster templates that were already stored
	Stored   []int // pages written (and read back identical) by this call
	Deleted  []int // pages erased: templates no longer in the roster, duplicates, unreadable pages
	Free     int   // free pages afterwards
	Failed   []SyncFailure
}

// SyncFailure is a roster template that is not in the library after the sync, and why.
type SyncFailure struct {
	Trainee string
	Finger  string
	Err     error
}

// SyncTemplates makes the module's library hold exactly the given templates, one page each, and
// rebuilds the page -> trainee map from them. It reads the index table; reads back (LoadChar +
// UpChar) the occupied pages it does not know yet, to learn which template each holds; deletes
// pages whose template is not in the list (including fingers enrolled here that the roster does
// not carry yet: Enroll returned them for the central system); and downloads and stores the
// missing templates at free pages, reading each back to check it.
//
// Templates are recognised by their exact bytes. A template that cannot be stored (library full,
// the read-back differs, the module refuses it, its size is not a whole number of data packets, or
// the same bytes are listed for two trainees) is reported in SyncReport.Failed and the others go
// on. An error is returned, with the report so far, when the line fails or ctx is done; the map
// then holds what is known to be right. SyncTemplates takes turns with Next on the line, so
// identification goes on while it runs; it waits for a running Enroll.
func (r *Reader) SyncTemplates(ctx context.Context, templates []drivers.Template) (SyncReport, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	capacity := r.para.Capacity
	rep := SyncReport{Capacity: capacity}

	var idx Index
	err := r.exclusive(ctx, func(s *Session) error {
		var err error
		idx, err = s.ReadIndex(ctx, capacity)
		return err
	})
	if err != nil {
		return rep, err
	}

	// What the reader knows of pages that are now empty is stale; occupied pages it does not
	// know are read back.
	r.mu.Lock()
	for page := range r.lib {
		if page >= capacity || !idx[page] {
			delete(r.lib, page)
			delete(r.pages, page)
		}
	}
	var unknown []int
	for page, used := range idx {
		if _, ok := r.lib[page]; used && !ok {
			unknown = append(unknown, page)
		}
	}
	r.mu.Unlock()
	var unreadable []int
	for _, page := range unknown {
		var data []byte
		err := r.exclusive(ctx, func(s *Session) error {
			if err := s.LoadChar(ctx, Buffer2, page); err != nil {
				return err
			}
			var err error
			data, err = s.UpChar(ctx, Buffer2)
			return err
		})
		var ce *CodeError
		switch {
		case err == nil:
			r.mu.Lock()
			r.lib[page] = templateSum(data)
			r.mu.Unlock()
		case errors.As(err, &ce):
			unreadable = append(unreadable, page)
		default:
			return rep, err
		}
	}

	// The roster, by template bytes.
	type entry struct {
		t   drivers.Template
		sum [32]byte
	}
	var want, all []entry
	byHash := map[[32]byte]int{} // sum -> index in want
	conflict := map[[32]byte]bool{}
	for _, t := range templates {
		if n := len(t.Data); n == 0 || n > maxTemplate || n%r.para.PacketSize != 0 {
			rep.Failed = append(rep.Failed, SyncFailure{t.Trainee, t.Finger, fmt.Errorf(
				"zfm: sync: template of %d bytes is not a whole number of %d-byte packets (at most %d bytes)",
				n, r.para.PacketSize, maxTemplate)})
			continue
		}
		sum := templateSum(t.Data)
		all = append(all, entry{t, sum})
		if i, dup := byHash[sum]; dup {
			if want[i].t.Trainee != t.Trainee {
				conflict[sum] = true
			}
			continue
		}
		byHash[sum] = len(want)
		want = append(want, entry{t, sum})
	}
	for _, e := range all {
		if conflict[e.sum] {
			rep.Failed = append(rep.Failed, SyncFailure{e.t.Trainee, e.t.Finger,
				errors.New("zfm: sync: the same template is listed for two trainees; neither is stored")})
		}
	}

	// Map the pages that stay; everything else that is occupied goes.
	r.mu.Lock()
	pages := make([]int, 0, len(r.lib))
	for page := range r.lib {
		pages = append(pages, page)
	}
	sort.Ints(pages)
	have := map[[32]byte]int{} // sum -> page
	newMap := map[int]assignment{}
	del := unreadable
	for _, page := range pages {
		sum := r.lib[page]
		i, ok := byHash[sum]
		if !ok || conflict[sum] {
			del = append(del, page)
			continue
		}
		if _, dup := have[sum]; dup {
			del = append(del, page)
			continue
		}
		have[sum] = page
		newMap[page] = assignment{want[i].t.Trainee, want[i].t.Finger}
	}
	r.pages = newMap
	r.mu.Unlock()
	rep.Kept = len(have)

	sort.Ints(del)
	for i := 0; i < len(del); {
		j := i + 1
		for j < len(del) && del[j] == del[j-1]+1 {
			j++
		}
		start, count := del[i], j-i
		err := r.exclusive(ctx, func(s *Session) error { return s.DeletChar(ctx, start, count) })
		if err != nil {
			return rep, err
		}
		r.mu.Lock()
		for _, page := range del[i:j] {
			delete(r.lib, page)
			idx[page] = false
		}
		r.mu.Unlock()
		rep.Deleted = append(rep.Deleted, del[i:j]...)
		i = j
	}

	for _, e := range want {
		if conflict[e.sum] {
			continue
		}
		if _, ok := have[e.sum]; ok {
			continue
		}
		page, ok := idx.Free()
		if !ok {
			rep.Failed = append(rep.Failed, SyncFailure{e.t.Trainee, e.t.Finger, fmt.Errorf("zfm: sync: %w (%d pages)", ErrLibraryFull, capacity)})
			continue
		}
		idx[page] = true // whatever happens next, do not reuse it in this call
		var back []byte
		err := r.exclusive(ctx, func(s *Session) error {
			if err := s.DownChar(ctx, Buffer1, e.t.Data); err != nil {
				return err
			}
			if err := s.Store(ctx, Buffer1, page); err != nil {
				return err
			}
			if err := s.LoadChar(ctx, Buffer2, page); err != nil {
				return err
			}
			var err error
			back, err = s.UpChar(ctx, Buffer2)
			return err
		})
		var ce *CodeError
		switch {
		case errors.As(err, &ce):
			rep.Failed = append(rep.Failed, SyncFailure{e.t.Trainee, e.t.Finger, err})
			continue
		case err != nil:
			return rep, err
		case !bytes.Equal(back, e.t.Data):
			if err := r.exclusive(ctx, func(s *Session) error { return s.DeletChar(ctx, page, 1) }); err != nil {
				return rep, err
			}
			idx[page] = false
			rep.Failed = append(rep.Failed, SyncFailure{e.t.Trainee, e.t.Finger,
				fmt.Errorf("zfm: sync: page %d: %w", page, ErrVerify)})
			continue
		}
		r.mu.Lock()
		r.lib[page] = e.sum
		r.pages[page] = assignment{e.t.Trainee, e.t.Finger}
		r.mu.Unlock()
		have[e.sum] = page
		rep.Stored = append(rep.Stored, page)
	}
	rep.Free = capacity - idx.Count()
	if len(rep.Stored) > 0 || len(rep.Deleted) > 0 || len(rep.Failed) > 0 {
		r.log.Info("zfm: library synchronised", "kept", rep.Kept, "stored", len(rep.Stored),
			"deleted", len(rep.Deleted), "failed", len(rep.Failed), "free", rep.Free)
	}
	return rep, nil
}

// Enroll captures a new finger: two touches with a lift between, merged into a template
// (RegModel), stored at the lowest free page and uploaded. It returns the template, for the agent
// to record for the central system; the page is not assigned to anyone until a roster carrying the
// template comes through SyncTemplates. progress, if not nil, is told what to ask of the person
// ("place finger", "lift finger", ...). Identification pauses while Enroll runs. It fails with
// ErrLibraryFull, with ErrCombine when the two touches are not the same finger, and with ctx's
// error when ctx is done before the person has finished.
func (r *Reader) Enroll(ctx context.Context, progress func(string)) ([]byte, error) {
	if progress == nil {
		progress = func(string) {}
	}
	if err := r.acquire(ctx); err != nil {
		return nil, err
	}
	defer r.release()
	defer func() {
		r.mu.Lock()
		r.needLift = true // the second touch may still be on the sensor
		r.mu.Unlock()
	}()

	var idx Index
	err := r.mod.Do(ctx, func(s *Session) error {
		var err error
		idx, err = s.ReadIndex(ctx, r.para.Capacity)
		return err
	})
	if err != nil {
		return nil, err
	}
	page, ok := idx.Free()
	if !ok {
		return nil, fmt.Errorf("zfm: enroll: %w (%d pages)", ErrLibraryFull, r.para.Capacity)
	}

	r.mu.Lock()
	lift := r.needLift
	r.mu.Unlock()
	if lift {
		progress("lift finger")
		if err := r.waitLift(ctx); err != nil {
			return nil, err
		}
	}
	for i, buf := range []Buffer{Buffer1, Buffer2} {
		ask := "place finger"
		if i == 1 {
			ask = "place the same finger again"
		}
		if err := r.capture(ctx, buf, ask, progress); err != nil {
			return nil, err
		}
		if i == 0 {
			progress("lift finger")
			if err := r.waitLift(ctx); err != nil {
				return nil, err
			}
		}
	}

	var data []byte
	err = r.mod.Do(ctx, func(s *Session) error {
		if err := s.RegModel(ctx); err != nil {
			return err
		}
		if err := s.Store(ctx, Buffer1, page); err != nil {
			return err
		}
		var err error
		data, err = s.UpChar(ctx, Buffer1)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.lib[page] = templateSum(data)
	r.mu.Unlock()
	progress(fmt.Sprintf("stored at page %d", page))
	r.log.Info("zfm: finger enrolled", "page", page, "bytes", len(data))
	return data, nil
}

// capture asks for a finger and turns its image into a character file in buf, asking again
// (after a lift) when the image is too poor. The caller holds flow.
func (r *Reader) capture(ctx context.Context, buf Buffer, ask string, progress func(string)) error {
	progress(ask)
	for {
		err := r.mod.Do(ctx, func(s *Session) error {
			if err := s.GenImg(ctx); err != nil {
				return err
			}
			return s.Img2Tz(ctx, buf)
		})
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNoFinger):
		case errors.Is(err, ErrImageMessy), errors.Is(err, ErrFewPoints), errors.Is(err, ErrCapture), errors.Is(err, ErrNoImage):
			r.mu.Lock()
			r.stats.ImageErrors++
			r.mu.Unlock()
			progress("image unclear: lift finger")
			if err := r.waitLift(ctx); err != nil {
				return err
			}
			progress(ask)
		default:
			return err
		}
		if err := r.sleep(ctx, r.cfg.PollInterval); err != nil {
			return err
		}
	}
}

// waitLift polls GenImg until the sensor is clear. The caller holds flow.
func (r *Reader) waitLift(ctx context.Context) error {
	for {
		err := r.mod.Do(ctx, func(s *Session) error { return s.GenImg(ctx) })
		switch {
		case errors.Is(err, ErrNoFinger):
			return nil
		case err == nil, errors.Is(err, ErrCapture):
		default:
			return err
		}
		if err := r.sleep(ctx, r.cfg.PollInterval); err != nil {
			return err
		}
	}
}

// String summarises the sync for the log.
func (r SyncReport) String() string {
	s := fmt.Sprintf("capacity %d, kept %d, stored %d, deleted %d, free %d", r.Capacity, r.Kept, len(r.Stored), len(r.Deleted), r.Free)
	for _, f := range r.Failed {
		s += fmt.Sprintf("; %s/%s not stored: %v", f.Trainee, f.Finger, f.Err)
	}
	return s
}
