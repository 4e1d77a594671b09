// Package label gives every code a person reads on the box a Chinese label first (zh-CN) and an
// English one: the ledger's event kinds, refusal and alarm reasons, doubt flags (疑点), the
// identification methods, the statuses of the class-hour reports and the problems a bundle check
// finds. The code is kept beside the
// label, because the central system's staff search and filter by code.
//
// An unknown code (an event written by a newer version) is shown as the code itself, never
// dropped. A test parses the ledger's and the drivers' source so a constant added there without a
// label here fails the build's tests.
package label

import (
	"fmt"
	"strings"

	"github.com/kaoqin/kaoqin/agent/ledger"
)

// Lang is the language of a page, a report or an export.
type Lang string

// Languages. Chinese is the default everywhere a classroom or an inspector reads.
const (
	ZH Lang = "zh-CN"
	EN Lang = "en"
)

// ParseLang reads a ?lang= parameter or a --lang flag: "" and "zh", "zh-CN", "zh-Hans" are
// Chinese, "en" and "en-*" English; anything else is an error.
func ParseLang(s string) (Lang, error) {
	switch l := strings.ToLower(strings.TrimSpace(s)); {
	case l == "" || l == "zh" || l == "zh-cn" || l == "zh-hans" || l == "zh_cn":
		return ZH, nil
	case l == "en" || strings.HasPrefix(l, "en-") || strings.HasPrefix(l, "en_"):
		return EN, nil
	}
	return ZH, fmt.Errorf("label: language %q: want zh-CN or en", s)
}

// Label is a code with its Chinese and English names.
type Label struct {
	Code string
	ZH   string
	EN   string
}

// In is the label in lang (Chinese unless lang is EN).
func (l Label) In(lang Lang) string {
	if lang == EN {
		return l.EN
	}
	return l.ZH
}

// Coded is the label in lang with the code beside it, "签到 (sign_in)"; in English, where the
// label is close to the code, just the label with the code: "sign-in (sign_in)".
func (l Label) Coded(lang Lang) string {
	s := l.In(lang)
	if s == l.Code {
		return s
	}
	return s + " (" + l.Code + ")"
}

func (l Label) String() string { return l.Coded(ZH) }

func lookup(table map[string][2]string, code string) Label {
	if t, ok := table[code]; ok {
		return Label{Code: code, ZH: t[0], EN: t[1]}
	}
	return Label{Code: code, ZH: code, EN: code}
}

// Kind labels an event kind.
func Kind(k ledger.Kind) Label { return lookup(kinds, string(k)) }

// Reason labels a refusal or alarm reason.
func Reason(r ledger.Reason) Label { return lookup(reasons, string(r)) }

// Flag labels a doubt flag.
func Flag(f ledger.Flag) Label { return lookup(flags, string(f)) }

// Method labels an identification method (drivers.Method, as recorded in Event.Method).
func Method(m string) Label { return lookup(methods, m) }

// Status labels a status code of the class-hour reports (report.Status).
func Status(s string) Label { return lookup(statuses, s) }

// Problem labels what a bundle check found (export.Code).
func Problem(code string) Label { return lookup(problems, code) }

// Flags joins the labels of fs in lang, each with its code: "迟到 (late)、人工补签 (manual_override)".
func Flags(fs []ledger.Flag, lang Lang) string {
	sep := "、"
	if lang == EN {
		sep = ", "
	}
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(Flag(f).Coded(lang))
	}
	return b.String()
}

// Known reports whether code has a label in the table of its kind ("kind", "reason", "flag",
// "method", "status", "problem").
func Known(table, code string) bool {
	t, ok := tables[table]
	if !ok {
		return false
	}
	_, ok = t[code]
	return ok
}

var tables = map[string]map[string][2]string{
	"kind": kinds, "reason": reasons, "flag": flags, "method": methods, "status": statuses, "problem": problems,
}

var kinds = map[string][2]string{
	"sign_in":         {"签到", "sign-in"},
	"sign_out":        {"签退", "sign-out"},
	"voucher_checkin": {"培训券核验登记", "voucher check-in"},
	"refusal":         {"拒绝", "refusal"},
	"duplicate":       {"重复打卡（不计）", "duplicate (not counted)"},
	"enrollment":      {"生物特征采集", "enrolment"},
	"alarm":           {"告警", "alarm"},
	"spot_check":      {"随机抽查", "spot check"},
	"inspection":      {"现场检查", "inspection"},
	"attachment":      {"补传证据照片", "photos sent after the event"},
	"reading":         {"待定打卡（时间未校准）", "reading pending trusted time"},
	"time_anchor":     {"时间校准锚点", "time anchor"},
	"dataset":         {"数据集下发", "dataset"},
	"certificate":     {"证书编号分配", "certificate serial"},
	"denied":          {"操作被拒绝", "action denied"},
}

var reasons = map[string][2]string{
	"unidentified":            {"未识别", "not identified"},
	"unknown_trainee":         {"非名册学员", "not in the roster"},
	"low_score":               {"比对分数过低", "score too low"},
	"ambiguous":               {"比对结果不唯一", "ambiguous match"},
	"override_incomplete":     {"人工补签缺少操作员或理由", "override without operator or reason"},
	"no_session":              {"当前无该学员的课次", "no session open now"},
	"sign_in_closed":          {"签到已截止", "sign-in closed"},
	"not_signed_in":           {"未签到，不能签退", "not signed in"},
	"no_voucher":              {"培训券不在名册中", "voucher not in the roster"},
	"voucher_not_yet_valid":   {"培训券尚未生效", "voucher not yet valid"},
	"voucher_expired":         {"培训券已过期", "voucher expired"},
	"voucher_revoked":         {"培训券已作废", "voucher revoked"},
	"voucher_used":            {"培训券已使用", "voucher used"},
	"voucher_already_bound":   {"培训券已在其他机构登记", "voucher bound elsewhere"},
	"not_voucher_holder":      {"非培训券持有人本人", "not the voucher's holder"},
	"voucher_not_accepted":    {"本机构不受理该培训券", "voucher not accepted here"},
	"voucher_checkin_timeout": {"培训券核验超时", "voucher check-in timed out"},
	"unknown_voucher":         {"无效的培训券", "unknown voucher"},
	"institution_retired":     {"培训机构已停办", "institution retired"},
	"clock_untrusted":         {"本机时间未校准，无法核验培训券日期", "box time not trusted: voucher dates cannot be checked"},
	// Alarm reasons.
	"new_epoch":       {"新账本纪元", "new ledger epoch"},
	"clock_jump":      {"系统时钟回拨", "clock went backwards"},
	"disk_full":       {"磁盘空间不足，拒绝新采集", "disk full, captures refused"},
	"ack_beyond_sent": {"中心确认超出已发送记录", "central ack beyond what was sent"},
	"dataset_refused": {"数据集被拒绝", "dataset refused"},
	// Refused datasets and denied actions.
	"dataset_unsigned":       {"数据集未经中心签名", "dataset not signed by the central system"},
	"dataset_bad_signature":  {"数据集签名无效", "dataset signature invalid"},
	"dataset_wrong_device":   {"数据集不是发给本设备的", "dataset signed for another device"},
	"dataset_expired":        {"数据集已过有效期", "dataset expired"},
	"dataset_replayed":       {"数据集版本不新于现用版本（重放）", "dataset not newer (replayed)"},
	"dataset_invalid":        {"数据集内容无效", "dataset invalid"},
	"dataset_empties_room":   {"数据集会清空本机构或在上课次的学员", "dataset would empty the room"},
	"dataset_unsupported":    {"本设备不支持该数据集", "dataset not supported"},
	"no_operator":            {"未指明操作员", "no operator named"},
	"bad_secret":             {"操作员身份验证失败", "operator authentication failed"},
	"role_lacks_right":       {"操作员角色无此权限", "operator's role lacks the right"},
	"second_operator_needed": {"超过补签上限，需第二名操作员确认", "a second operator must confirm"},
	"identity_check_failed":  {"身份证号核对不符", "identity check failed"},
	"outside_serial_block":   {"超出中心分配的证书编号段", "outside the assigned serial blocks"},
}

var flags = map[string][2]string{
	"late":                 {"迟到", "late"},
	"early_leave":          {"早退", "early leave"},
	"clock_unsynced":       {"时钟未同步", "clock not synchronised"},
	"clock_jump":           {"时钟回拨", "clock jumped back"},
	"low_margin":           {"比对差距小", "low margin"},
	"manual_override":      {"人工补签", "manual override"},
	"two_devices":          {"短时间内多台设备打卡", "two devices within minutes"},
	"rapid_succession":     {"同一设备连续打卡", "rapid succession at one reader"},
	"not_seen_by_camera":   {"摄像头未见本人", "not seen by the camera"},
	"absent_at_spot_check": {"随机抽查不在场", "absent at spot check"},
	"headcount_short":      {"抽查人数少于签到人数", "fewer faces than sign-ins"},
	"terminal_clock_off":   {"终端时钟偏差过大", "terminal clock off"},
	"terminal_new_address": {"终端从新地址连接", "terminal at a new address"},
	"face_duplicate":       {"人脸与他人重复", "face registered under another person"},
	"time_pending":         {"时间未校准，待判定", "pending trusted time"},
	"time_anchored":        {"时间按校准锚点推算", "time from the anchor"},
	"unsigned_dataset":     {"本机接受未签名数据集（开发模式）", "unsigned datasets accepted (development)"},
	"second_operator":      {"第二操作员已确认", "confirmed by a second operator"},
}

var methods = map[string][2]string{
	"fingerprint": {"指纹", "fingerprint"},
	"face":        {"人脸", "face"},
	"card":        {"刷卡", "card"},
	"voucher":     {"扫培训券", "voucher scan"},
	"manual":      {"人工补签", "manual entry"},
}

var statuses = map[string][2]string{
	"present":      {"出勤", "present"},
	"in_progress":  {"在课", "in class"},
	"no_sign_out":  {"未签退", "no sign-out"},
	"absent":       {"缺勤", "absent"},
	"upcoming":     {"未签到", "not signed in yet"},
	"not_enrolled": {"非本班学员", "not enrolled"},
}

var problems = map[string][2]string{
	"file_added":       {"文件被添加", "file added"},
	"file_removed":     {"文件被删除", "file removed"},
	"file_edited":      {"文件被修改", "file edited"},
	"manifest_edited":  {"清单被修改", "manifest edited"},
	"key_untrusted":    {"设备公钥不是可信公钥", "device key not trusted"},
	"record_edited":    {"事件记录被修改", "event record edited"},
	"link_broken":      {"哈希链断开（记录被删除或插入）", "hash link broken (a record removed or inserted)"},
	"head_mismatch":    {"链头哈希不符", "head hash does not match"},
	"events_edited":    {"导出的事件与签名记录不符", "exported events differ from the signed records"},
	"evidence_edited":  {"证据照片被修改", "evidence photo edited"},
	"evidence_removed": {"证据照片被删除", "evidence photo removed"},
	"receipt_mismatch": {"与中心回执不符", "differs from the central receipt"},
	"events_removed":   {"中心已确认的事件被删除", "acknowledged events removed"},
	"receipt_invalid":  {"中心回执签名无效", "central receipt signature invalid"},
}
