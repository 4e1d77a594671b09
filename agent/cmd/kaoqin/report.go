package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kaoqin/kaoqin/agent"
	"github.com/kaoqin/kaoqin/agent/export"
	"github.com/kaoqin/kaoqin/agent/label"
	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/ops"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
)

const reportUsage = "report hours [--programme ID] [--csv] [--lang zh|en] | report sheet --session ID [--csv] [--lang zh|en]"

// cmdReport prints the class-hour report and the sign-in sheet: the figures of the inspector's
// Reports page, from the same functions (agent/report).
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, err := pickSub(args, "report", []string{"hours", "sheet"}, "Usage: kaoqin "+reportUsage, stdout)
	if err != nil {
		return err
	}
	fs := newFlags("report "+sub, reportUsage, stderr)
	cfgPath := fs.String("config", agent.DefaultConfigPath, "config file (finds the daemon's socket or the ledger)")
	db := fs.String("db", "", "read this ledger file instead (daemon stopped, or a copy)")
	asCSV := fs.Bool("csv", false, "CSV (UTF-8 with BOM, for Excel and WPS) instead of a table")
	langFlag := fs.String("lang", "zh", "zh or en")
	session := fs.String("session", "", "the session of the sign-in sheet (report sheet)")
	programme := fs.String("programme", "", "only this programme (report hours)")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	lang, err := label.ParseLang(*langFlag)
	if err != nil {
		return usageError{err}
	}
	if sub == "sheet" && *session == "" {
		return usagef("report sheet: --session is required")
	}
	l, err := openLedger(*cfgPath, *db, readOnly)
	if err != nil {
		return err
	}
	defer l.Close()
	sum, err := l.Roster(ctx)
	if err != nil {
		return err
	}
	r := rosterOf(sum)
	opt := report.Options{Now: time.Now()}
	csvOpt := export.Options{Lang: lang, Names: export.Names(r)}
	if sub == "sheet" {
		evs, err := sessionEvents(ctx, l, r, *session)
		if err != nil {
			return err
		}
		sh, err := report.SheetOf(evs, r, *session, opt)
		if err != nil {
			return usageError{err}
		}
		if *asCSV {
			return export.Sheet(stdout, sh, csvOpt)
		}
		return printSheet(stdout, sh, lang)
	}
	if *programme != "" && !hasProgramme(r, *programme) {
		return usagef("report hours: programme %q is not in the roster", *programme)
	}
	var all []*roster.Session
	for i := range r.Sessions {
		all = append(all, &r.Sessions[i])
	}
	evs, err := spanEvents(ctx, l, all)
	if err != nil {
		return err
	}
	hs := report.ClassHours(evs, r, opt)
	if *programme != "" {
		kept := hs[:0]
		for _, h := range hs {
			if h.Programme == *programme {
				kept = append(kept, h)
			}
		}
		hs = kept
	}
	if *asCSV {
		return export.Hours(stdout, hs, csvOpt)
	}
	return printHours(stdout, hs, lang)
}

func hasProgramme(r *roster.Roster, id string) bool {
	for _, p := range r.Programmes {
		if p.ID == id {
			return true
		}
	}
	return false
}

// rosterOf rebuilds the roster a report needs from the masked summary the API gives: trainees
// with their classes, sessions and programmes. ID numbers stay masked (a report masks them
// anyway, and masking a masked number changes nothing).
func rosterOf(s ops.RosterSummary) *roster.Roster {
	r := &roster.Roster{Version: s.Version, Institutions: s.Institutions, Programmes: s.Programmes, Sessions: s.Sessions}
	for _, t := range s.Trainees {
		tr := roster.Trainee{ID: t.ID, Name: t.Name, IDNumber: t.IDMasked}
		for _, c := range t.Classes {
			tr.Enrolments = append(tr.Enrolments, roster.Enrolment{Class: c})
		}
		r.Trainees = append(r.Trainees, tr)
	}
	return r
}

// spanEvents reads the events a report over sessions needs.
func spanEvents(ctx context.Context, l *ledgerOf, sessions []*roster.Session) ([]ledger.Event, error) {
	since, until := report.Span(sessions)
	if since.IsZero() {
		return nil, nil
	}
	var evs []ledger.Event
	err := l.Events(ctx, ledger.Filter{Since: since, Until: until}, 0, func(e *ledger.Event) error {
		evs = append(evs, e.WithoutTemplate()) // a spot check's counts kept, as the pages keep them
		return nil
	})
	return evs, err
}

// sessionEvents reads the events of a session and of every session overlapping it.
func sessionEvents(ctx context.Context, l *ledgerOf, r *roster.Roster, id string) ([]ledger.Event, error) {
	var s *roster.Session
	for i := range r.Sessions {
		if r.Sessions[i].ID == id {
			s = &r.Sessions[i]
		}
	}
	if s == nil {
		return nil, usagef("report sheet: session %q is not in the roster", id)
	}
	var around []*roster.Session
	for i := range r.Sessions {
		x := &r.Sessions[i]
		if x.Opens().Before(s.Closes()) && s.Opens().Before(x.Closes()) {
			around = append(around, x)
		}
	}
	return spanEvents(ctx, l, around)
}

func tr(lang label.Lang, zh, en string) string {
	if lang == label.EN {
		return en
	}
	return zh
}

func printHours(w io.Writer, hs []report.Hours, lang label.Lang) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, tr(lang, "学员\t姓名\t身份证号\t项目\t规定\t已排\t出勤\t存疑\t完成率\t缺勤\t未签退\t疑点",
		"TRAINEE\tNAME\tID NUMBER\tPROGRAMME\tREQUIRED\tSCHEDULED\tATTENDED\tIN DOUBT\tCOMPLETION\tMISSED\tNO SIGN-OUT\tFLAGS"))
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.1f%%\t%d\t%d\t%s\n", h.Trainee, h.Name, h.IDMasked, h.Programme,
			h.Required, h.Scheduled, h.Attended, h.Doubtful, h.Ratio*100, len(h.Missed), len(h.NoSignOut), label.Flags(h.Flags, lang))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, tr(lang, "1 学时 = 45 分钟；存疑学时计入出勤，付费前须复核。", "1 class hour = 45 minutes; hours in doubt are counted, to review before payment."))
	return err
}

func printSheet(w io.Writer, sh report.Sheet, lang label.Lang) error {
	fmt.Fprintf(w, "%s %s · %s %s %s · %s %s · %s–%s · %d %s\n", tr(lang, "签到表", "sign-in sheet"), sh.Session,
		tr(lang, "项目", "programme"), sh.Programme, sh.Occupation, tr(lang, "班级", "class"), sh.Class,
		sh.Start.Format("2006-01-02 15:04"), sh.End.Format("15:04"), sh.ClassHours, tr(lang, "学时", "class hours"))
	fmt.Fprintf(w, "%s %d · %s %d · %s %d · %s %d · %s %d\n", tr(lang, "应到", "expected"), sh.Expected, tr(lang, "已签到", "signed in"), sh.SignedIn,
		tr(lang, "已签退", "signed out"), sh.SignedOut, tr(lang, "未到", "missing"), sh.Missing, tr(lang, "有疑点", "flagged"), sh.Flagged)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, tr(lang, "#\t学员\t姓名\t身份证号\t签到\t方式\t签退\t方式\t学时\t状态\t疑点", "#\tTRAINEE\tNAME\tID NUMBER\tIN\tMETHOD\tOUT\tMETHOD\tHOURS\tSTATUS\tFLAGS"))
	for i, r := range sh.Rows {
		var in, inM, out, outM string
		if r.In != nil {
			in, inM = r.In.At.Format("15:04:05"), label.Method(r.In.Method).In(lang)
			if !r.In.Synced {
				in += "*"
			}
		}
		if r.Out != nil {
			out, outM = r.Out.At.Format("15:04:05"), label.Method(r.Out.Method).In(lang)
			if !r.Out.Synced {
				out += "*"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", i+1, r.Trainee, r.Name, r.IDMasked, in, inM, out, outM,
			r.ClassHours, label.Status(string(r.Status)).In(lang), strings.TrimSpace(label.Flags(r.Flags, lang)))
	}
	return tw.Flush()
}
