package inspect

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"

	"github.com/kaoqin/kaoqin/agent/ledger"
	"github.com/kaoqin/kaoqin/agent/report"
	"github.com/kaoqin/kaoqin/agent/roster"
)

// timeline is a session's events drawn on its time axis, as an SVG rendered on the server: the
// scheduled time shaded, one lane each for sign-ins, sign-outs, spot checks and refusals, a mark
// every hour and a line at now. It scales to the page's width (viewBox).
type timeline struct {
	SVG template.HTML
}

const (
	tlWidth  = 600.0
	tlLeft   = 70.0
	tlRight  = 10.0
	tlLane   = 18.0
	tlTop    = 6.0
	tlLanes  = 4
	tlHeight = tlTop + tlLanes*tlLane + 20
)

func newTimeline(s *roster.Session, evs []ledger.Event, now time.Time, zone *time.Location) timeline {
	from, to := s.Opens(), s.Closes()
	if !to.After(from) {
		return timeline{}
	}
	span := to.Sub(from).Seconds()
	x := func(t time.Time) float64 {
		f := t.Sub(from).Seconds() / span
		f = max(0, min(1, f))
		return tlLeft + f*(tlWidth-tlLeft-tlRight)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" viewBox="0 0 %.0f %.0f" role="img" xmlns="http://www.w3.org/2000/svg">`, tlWidth, tlHeight)
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(s.ID))
	y0 := tlTop
	y1 := tlTop + tlLanes*tlLane
	// The scheduled time, shaded.
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#e8f0fe"/>`, x(s.Start), y0, x(s.End)-x(s.Start), y1-y0)
	lanes := []struct{ zh, en, color string }{{"签到", "in", "#1a7f37"}, {"签退", "out", "#0969da"}, {"抽查", "spot", "#bc4c00"}, {"拒绝", "refused", "#cf222e"}}
	for i, l := range lanes {
		y := y0 + float64(i)*tlLane + tlLane/2
		fmt.Fprintf(&b, `<text x="4" y="%.1f" font-size="11" fill="%s">%s %s</text>`, y+4, l.color, l.zh, l.en)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`, tlLeft, y, tlWidth-tlRight, y)
	}
	// Hour marks.
	for h := from.In(zone).Truncate(time.Hour).Add(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="2,2"/>`, x(h), y0, x(h), y1)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle" fill="#555">%s</text>`, x(h), y1+13, h.In(zone).Format("15:04"))
	}
	for _, e := range evs {
		lane := -1
		switch e.Kind {
		case ledger.SignIn:
			lane = 0
		case ledger.SignOut:
			lane = 1
		case report.KindSpotCheck:
			lane = 2
		case ledger.Refusal:
			lane = 3
		}
		if lane < 0 {
			continue
		}
		y := y0 + float64(lane)*tlLane + tlLane/2
		color := lanes[lane].color
		tip := html.EscapeString(fmt.Sprintf("%s %s %s", e.Time.Wall.In(zone).Format("15:04:05"), e.Trainee, e.Kind))
		if len(e.Flags) > 0 {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="none" stroke="#bf8700" stroke-width="2"><title>%s</title></circle>`, x(e.Time.Wall), y, tip)
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="3" height="10" fill="%s"><title>%s</title></rect>`, x(e.Time.Wall)-1.5, y-5, color, tip)
	}
	if now.After(from) && now.Before(to) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#cf222e" stroke-width="1.5"/>`, x(now), y0, x(now), y1)
	}
	b.WriteString(`</svg>`)
	return timeline{SVG: template.HTML(b.String())} // every text in it is escaped above
}

// rowsHTML renders the rows of a session on the today page. It is written here rather than in
// the template because a day of 200 trainees in four sessions is 800 rows, and html/template's
// reflection and escaping per field would be most of the page's time; every value is escaped.
func rowsHTML(v view, rows []report.Attendance) template.HTML {
	var b strings.Builder
	b.Grow(len(rows) * 600)
	esc := html.EscapeString
	mark := func(m *report.Mark) {
		if m == nil {
			b.WriteString("<td></td>")
			return
		}
		b.WriteString("<td>")
		b.WriteString(esc(v.Clock(m.At)))
		if !m.Synced {
			b.WriteByte('*')
		}
		b.WriteString("<br><small>")
		b.WriteString(esc(v.Method(m.Method)))
		b.WriteString(" · ")
		b.WriteString(esc(m.Source))
		if sc := v.Score(m.Score); sc != "" {
			b.WriteString(" · ")
			b.WriteString(esc(sc))
		}
		b.WriteString("</small></td>")
	}
	photos := func(m *report.Mark) {
		if m == nil {
			return
		}
		for _, p := range m.Evidence {
			u := fmt.Sprintf("/evidence/%d/%s", m.Seq, esc(p.SHA256))
			fmt.Fprintf(&b, `<a href="%s"><img class="thumb" src="%s" alt="%s"></a>`, u, u, esc(v.T("evidence")))
		}
	}
	for _, r := range rows {
		b.WriteString(`<tr class="st-`)
		b.WriteString(esc(string(r.Status)))
		if r.Doubt {
			b.WriteString(" doubt")
		}
		b.WriteString(`" data-trainee="`)
		b.WriteString(esc(r.Trainee))
		b.WriteString(`"><td><b>`)
		b.WriteString(esc(r.Name))
		b.WriteString(`</b> <span class="id">`)
		b.WriteString(esc(r.Trainee))
		b.WriteString(`</span><br><span class="id">`)
		b.WriteString(esc(r.IDMasked))
		b.WriteString(`</span></td><td>`)
		b.WriteString(esc(v.Status(r.Status)))
		if r.ClassHours > 0 {
			fmt.Fprintf(&b, "<br><small>%d %s</small>", r.ClassHours, esc(v.T("hours")))
		}
		b.WriteString("</td>")
		mark(r.In)
		mark(r.Out)
		b.WriteString("<td>")
		for _, f := range r.Flags {
			b.WriteString(`<span class="flag">`)
			b.WriteString(esc(v.Flag(f)))
			b.WriteString("</span>")
		}
		if r.Duplicates > 0 {
			fmt.Fprintf(&b, `<span class="dup">%d× %s</span>`, r.Duplicates, esc(v.Kind(ledger.Duplicate)))
		}
		if r.Spot.NotSeen > 0 {
			fmt.Fprintf(&b, `<span class="flag">%s: %d× %s</span>`, esc(v.T("spot")), r.Spot.NotSeen, esc(v.T("notSeen")))
		}
		b.WriteString("</td><td>")
		photos(r.In)
		photos(r.Out)
		b.WriteString("</td></tr>\n")
	}
	return template.HTML(b.String())
}

// eventsHTML renders a list of events (the day's other events) as list items, for the same reason
// as rowsHTML: a busy day has hundreds of refusals. Every value is escaped.
func eventsHTML(v view, evs []ledger.Event) template.HTML {
	var b strings.Builder
	b.Grow(len(evs) * 160)
	esc := html.EscapeString
	part := func(s string) {
		if s != "" {
			b.WriteString(" · ")
			b.WriteString(esc(s))
		}
	}
	for i := range evs {
		e := &evs[i]
		b.WriteString(`<li class="k-`)
		b.WriteString(esc(string(e.Kind)))
		b.WriteString(`">`)
		b.WriteString(esc(v.Clock(e.Time.Wall)))
		if !e.Time.Synced {
			b.WriteByte('*')
		}
		part(v.Kind(e.Kind))
		if e.Reason != "" {
			part(v.Reason(e.Reason))
		}
		part(e.Trainee)
		part(e.Operator)
		part(e.Note)
		if e.Detail != "" {
			b.WriteString(" · <small>")
			b.WriteString(esc(e.Detail))
			b.WriteString("</small>")
		}
		b.WriteString("</li>\n")
	}
	return template.HTML(b.String())
}
