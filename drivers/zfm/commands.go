package zfm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// The typed commands. Each Session method sends one instruction (Search may send two, UpChar and
// DownChar add data packets) and returns its results; a confirmation code other than OK comes
// back as a *CodeError wrapping its sentinel (ErrNoFinger, ErrNotFound, ...). The Module methods
// of the same names run the Session method as one Do.

func u16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func checkBuffer(op string, b Buffer) error {
	if b != Buffer1 && b != Buffer2 {
		return fmt.Errorf("zfm: %s: character buffer %d, want 1 or 2", op, b)
	}
	return nil
}

func checkPage(op string, page int) error {
	if page < 0 || page > 0xFFFF {
		return fmt.Errorf("zfm: %s: page %d out of range", op, page)
	}
	return nil
}

// HandShake checks that an R50x module is ready. Older modules do not know it; use VfyPwd.
func (s *Session) HandShake(ctx context.Context) error {
	_, err := s.command(ctx, InstrHandShake, nil, timeoutDefault, 0)
	return err
}

// VfyPwd presents the module password (0 unless SetPwd changed it). It fails with
// ErrWrongPassword.
func (s *Session) VfyPwd(ctx context.Context, password uint32) error {
	_, err := s.command(ctx, InstrVfyPwd, u32(password), timeoutDefault, 0)
	return err
}

// SetPwd sets the module password.
func (s *Session) SetPwd(ctx context.Context, password uint32) error {
	_, err := s.command(ctx, InstrSetPwd, u32(password), timeoutDefault, 0)
	return err
}

// ReadSysPara reads the system parameters. The data packet size it reports is used by DownChar.
func (s *Session) ReadSysPara(ctx context.Context) (SysPara, error) {
	res, err := s.command(ctx, InstrReadSysPara, nil, timeoutDefault, sysParaLen)
	if err != nil {
		return SysPara{}, err
	}
	var p SysPara
	if err := p.UnmarshalBinary(res); err != nil {
		s.m.dirty = true
		return SysPara{}, fmt.Errorf("zfm: readsyspara: %w", err)
	}
	s.m.packetSize = p.PacketSize
	return p, nil
}

// System parameter registers of SetSysPara.
const (
	RegBaud       uint8 = 4 // baud multiplier N: 9600 * N
	RegSecurity   uint8 = 5 // security level 1..5
	RegPacketSize uint8 = 6 // data packet size code 0..3
)

// SetSysPara writes one system parameter register. Setting RegPacketSize changes the chunk size
// of later transfers.
func (s *Session) SetSysPara(ctx context.Context, reg, value uint8) error {
	if _, err := s.command(ctx, InstrSetSysPara, []byte{reg, value}, timeoutDefault, 0); err != nil {
		return err
	}
	if reg == RegPacketSize && value <= 3 {
		s.m.packetSize = 32 << value
	}
	return nil
}

// GenImg captures an image. With no finger on the sensor it fails at once with ErrNoFinger.
func (s *Session) GenImg(ctx context.Context) error {
	_, err := s.command(ctx, InstrGenImg, nil, timeoutDefault, 0)
	return err
}

// Img2Tz turns the captured image into a character file in buf. Poor images fail with
// ErrImageMessy or ErrFewPoints.
func (s *Session) Img2Tz(ctx context.Context, buf Buffer) error {
	if err := checkBuffer("img2tz", buf); err != nil {
		return err
	}
	_, err := s.command(ctx, InstrImg2Tz, []byte{byte(buf)}, timeoutDefault, 0)
	return err
}

// Match compares character buffers 1 and 2 and returns the score; ErrNoMatch if they differ.
func (s *Session) Match(ctx context.Context) (int, error) {
	res, err := s.command(ctx, InstrMatch, nil, timeoutDefault, 2)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(res)), nil
}

// Search looks for buf in count library pages from start and returns the best page and its
// score; ErrNotFound if none matches. It uses HiSpeedSearch (1B) until the module shows it does
// not know it, then Search (04) from then on.
func (s *Session) Search(ctx context.Context, buf Buffer, start, count int) (Hit, error) {
	if err := checkBuffer("search", buf); err != nil {
		return Hit{}, err
	}
	if err := checkPage("search", start); err != nil {
		return Hit{}, err
	}
	if count < 1 || count > 0xFFFF {
		return Hit{}, fmt.Errorf("zfm: search: page count %d out of range", count)
	}
	params := append(append([]byte{byte(buf)}, u16(start)...), u16(count)...)
	m := s.m
	if Support(m.hiSpeed.Load()) != Unsupported {
		hit, err := s.search(ctx, InstrHiSpeedSearch, params)
		if err == nil || !probeFailed(err) {
			if err == nil || errors.Is(err, ErrNotFound) {
				m.hiSpeed.Store(int32(Supported))
			}
			return hit, err
		}
		if Support(m.hiSpeed.Load()) == Supported {
			return hit, err // it worked before: this is a real failure
		}
		hit, err2 := s.search(ctx, InstrSearch, params)
		if err2 == nil || errors.Is(err2, ErrNotFound) {
			m.hiSpeed.Store(int32(Unsupported))
			m.log.Info("zfm: module does not know HiSpeedSearch, using Search", "hispeedsearch", err)
		}
		return hit, err2
	}
	return s.search(ctx, InstrSearch, params)
}

func (s *Session) search(ctx context.Context, in Instr, params []byte) (Hit, error) {
	res, err := s.command(ctx, in, params, timeoutLong, 4)
	if err != nil {
		return Hit{}, err
	}
	return Hit{Page: int(binary.BigEndian.Uint16(res[0:2])), Score: int(binary.BigEndian.Uint16(res[2:4]))}, nil
}

// RegModel merges character buffers 1 and 2 into a template (left in both); ErrCombine if they
// are not the same finger.
func (s *Session) RegModel(ctx context.Context) error {
	_, err := s.command(ctx, InstrRegModel, nil, timeoutDefault, 0)
	return err
}

// Store writes buf to a library page.
func (s *Session) Store(ctx context.Context, buf Buffer, page int) error {
	if err := checkBuffer("store", buf); err != nil {
		return err
	}
	if err := checkPage("store", page); err != nil {
		return err
	}
	_, err := s.command(ctx, InstrStore, append([]byte{byte(buf)}, u16(page)...), timeoutLong, 0)
	return err
}

// LoadChar reads a library page into buf; ErrBadTemplate if the page is empty or unreadable.
func (s *Session) LoadChar(ctx context.Context, buf Buffer, page int) error {
	if err := checkBuffer("loadchar", buf); err != nil {
		return err
	}
	if err := checkPage("loadchar", page); err != nil {
		return err
	}
	_, err := s.command(ctx, InstrLoadChar, append([]byte{byte(buf)}, u16(page)...), timeoutDefault, 0)
	return err
}

// UpChar uploads buf to the host: the acknowledgement, then data packets until the last one,
// each waited for at most one second.
func (s *Session) UpChar(ctx context.Context, buf Buffer) ([]byte, error) {
	if err := checkBuffer("upchar", buf); err != nil {
		return nil, err
	}
	if _, err := s.command(ctx, InstrUpChar, []byte{byte(buf)}, timeoutDefault, 0); err != nil {
		return nil, err
	}
	return s.upload(ctx, "upchar", maxTemplate)
}

// UpImage uploads the image buffer, the last capture, to the host: the acknowledgement, then data
// packets of the size the module reports, each waited for at most one second. On R30x and AS608
// modules the image is 256 pixels wide and 288 high, 4 bits a pixel, two pixels a byte (the left
// one in the high nibble): 36,864 bytes, over six seconds at 57600 baud.
func (s *Session) UpImage(ctx context.Context) ([]byte, error) {
	if _, err := s.command(ctx, InstrUpImage, nil, timeoutDefault, 0); err != nil {
		return nil, err
	}
	return s.upload(ctx, "upimage", maxImage)
}

// upload receives the data packets of a transfer, at most limit bytes, until the last one.
func (s *Session) upload(ctx context.Context, op string, limit int) ([]byte, error) {
	var data []byte
	for {
		p, err := s.receive(ctx, op, timeoutPacket, isData)
		if err != nil {
			return nil, err
		}
		data = append(data, p.Payload...)
		if len(data) > limit {
			s.m.dirty = true
			return nil, fmt.Errorf("zfm: %s: more than %d bytes: %w", op, limit, ErrBadReply)
		}
		if p.PID == PIDEndData {
			return data, nil
		}
	}
}

// GetRandomCode returns a random number from the module's generator.
func (s *Session) GetRandomCode(ctx context.Context) (uint32, error) {
	res, err := s.command(ctx, InstrGetRandomCode, nil, timeoutDefault, 4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(res), nil
}

// DownChar downloads data into buf: the command, its acknowledgement, then data packets of the
// size the module reported (read with ReadSysPara first if it was not). The module does not
// acknowledge the data; read it back with UpChar to check it. data must be a whole number of
// packets.
func (s *Session) DownChar(ctx context.Context, buf Buffer, data []byte) error {
	if err := checkBuffer("downchar", buf); err != nil {
		return err
	}
	if s.m.packetSize == 0 {
		if _, err := s.ReadSysPara(ctx); err != nil {
			return err
		}
	}
	size := s.m.packetSize
	if len(data) == 0 || len(data) > maxTemplate || len(data)%size != 0 {
		return fmt.Errorf("zfm: downchar: %d bytes is not a whole number of %d-byte packets (at most %d bytes)", len(data), size, maxTemplate)
	}
	if _, err := s.command(ctx, InstrDownChar, []byte{byte(buf)}, timeoutDefault, 0); err != nil {
		return err
	}
	for off := 0; off < len(data); off += size {
		pid := PIDData
		if off+size == len(data) {
			pid = PIDEndData
		}
		if err := s.send("downchar", pid, data[off:off+size]); err != nil {
			return err
		}
	}
	return nil
}

// DeletChar deletes count pages from page.
func (s *Session) DeletChar(ctx context.Context, page, count int) error {
	if err := checkPage("deletchar", page); err != nil {
		return err
	}
	if count < 1 || count > 0xFFFF {
		return fmt.Errorf("zfm: deletchar: page count %d out of range", count)
	}
	_, err := s.command(ctx, InstrDeletChar, append(u16(page), u16(count)...), timeoutLong, 0)
	return err
}

// Empty deletes every template in the library.
func (s *Session) Empty(ctx context.Context) error {
	_, err := s.command(ctx, InstrEmpty, nil, timeoutLong, 0)
	return err
}

// TemplateNum returns the number of templates in the library.
func (s *Session) TemplateNum(ctx context.Context) (int, error) {
	res, err := s.command(ctx, InstrTemplateNum, nil, timeoutDefault, 2)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(res)), nil
}

// ReadIndexTable returns the occupancy bitmap of pages 256*table to 256*table+255: bit n of byte
// k is page 256*table + 8k + n.
func (s *Session) ReadIndexTable(ctx context.Context, table int) ([32]byte, error) {
	var bits [32]byte
	if table < 0 || table > 3 {
		return bits, fmt.Errorf("zfm: readindextable: table %d, want 0..3", table)
	}
	res, err := s.command(ctx, InstrReadIndexTable, []byte{byte(table)}, timeoutDefault, 32)
	if err != nil {
		return bits, err
	}
	copy(bits[:], res)
	return bits, nil
}

// ReadIndex reads as many index tables as capacity needs and returns which pages are in use.
func (s *Session) ReadIndex(ctx context.Context, capacity int) (Index, error) {
	if capacity < 1 || capacity > MaxCapacity {
		return nil, fmt.Errorf("zfm: readindextable: capacity %d, want 1..%d", capacity, MaxCapacity)
	}
	x := make(Index, capacity)
	for table := 0; table*256 < capacity; table++ {
		bits, err := s.ReadIndexTable(ctx, table)
		if err != nil {
			return nil, err
		}
		for page := table * 256; page < capacity && page < (table+1)*256; page++ {
			k, n := (page-table*256)/8, (page-table*256)%8
			x[page] = bits[k]&(1<<n) != 0
		}
	}
	return x, nil
}

// AuraLedConfig sets the LED ring of an R50x module. A module without one answers with an error
// code or not at all; the first such answer is remembered and later calls fail at once with
// ErrUnsupported.
func (s *Session) AuraLedConfig(ctx context.Context, a Aura) error {
	m := s.m
	if Support(m.aura.Load()) == Unsupported {
		return fmt.Errorf("zfm: auraledconfig: %w", ErrUnsupported)
	}
	_, err := s.command(ctx, InstrAuraLedConfig, []byte{byte(a.Control), a.Speed, byte(a.Colour), a.Times}, timeoutDefault, 0)
	switch {
	case err == nil:
		m.aura.Store(int32(Supported))
	case Support(m.aura.Load()) == SupportUnknown && probeFailed(err):
		m.aura.Store(int32(Unsupported))
		m.log.Info("zfm: module has no LED ring control", "auraledconfig", err)
		return fmt.Errorf("zfm: auraledconfig: %w (%v)", ErrUnsupported, err)
	}
	return err
}

// Module-level commands: each is one Do.

// HandShake is Session.HandShake.
func (m *Module) HandShake(ctx context.Context) error {
	return m.Do(ctx, func(s *Session) error { return s.HandShake(ctx) })
}

// VfyPwd is Session.VfyPwd.
func (m *Module) VfyPwd(ctx context.Context, password uint32) error {
	return m.Do(ctx, func(s *Session) error { return s.VfyPwd(ctx, password) })
}

// SetPwd is Session.SetPwd.
func (m *Module) SetPwd(ctx context.Context, password uint32) error {
	return m.Do(ctx, func(s *Session) error { return s.SetPwd(ctx, password) })
}

// ReadSysPara is Session.ReadSysPara.
func (m *Module) ReadSysPara(ctx context.Context) (p SysPara, err error) {
	err = m.Do(ctx, func(s *Session) error { p, err = s.ReadSysPara(ctx); return err })
	return p, err
}

// SetSysPara is Session.SetSysPara.
func (m *Module) SetSysPara(ctx context.Context, reg, value uint8) error {
	return m.Do(ctx, func(s *Session) error { return s.SetSysPara(ctx, reg, value) })
}

// GenImg is Session.GenImg.
func (m *Module) GenImg(ctx context.Context) error {
	return m.Do(ctx, func(s *Session) error { return s.GenImg(ctx) })
}

// Img2Tz is Session.Img2Tz.
func (m *Module) Img2Tz(ctx context.Context, buf Buffer) error {
	return m.Do(ctx, func(s *Session) error { return s.Img2Tz(ctx, buf) })
}

// Match is Session.Match.
func (m *Module) Match(ctx context.Context) (score int, err error) {
	err = m.Do(ctx, func(s *Session) error { score, err = s.Match(ctx); return err })
	return score, err
}

// Search is Session.Search.
func (m *Module) Search(ctx context.Context, buf Buffer, start, count int) (hit Hit, err error) {
	err = m.Do(ctx, func(s *Session) error { hit, err = s.Search(ctx, buf, start, count); return err })
	return hit, err
}

// RegModel is Session.RegModel.
func (m *Module) RegModel(ctx context.Context) error {
	return m.Do(ctx, func(s *Session) error { return s.RegModel(ctx) })
}

// Store is Session.Store.
func (m *Module) Store(ctx context.Context, buf Buffer, page int) error {
	return m.Do(ctx, func(s *Session) error { return s.Store(ctx, buf, page) })
}

// LoadChar is Session.LoadChar.
func (m *Module) LoadChar(ctx context.Context, buf Buffer, page int) error {
	return m.Do(ctx, func(s *Session) error { return s.LoadChar(ctx, buf, page) })
}

// UpChar is Session.UpChar.
func (m *Module) UpChar(ctx context.Context, buf Buffer) (data []byte, err error) {
	err = m.Do(ctx, func(s *Session) error { data, err = s.UpChar(ctx, buf); return err })
	return data, err
}

// UpImage is Session.UpImage.
func (m *Module) UpImage(ctx context.Context) (data []byte, err error) {
	err = m.Do(ctx, func(s *Session) error { data, err = s.UpImage(ctx); return err })
	return data, err
}

// GetRandomCode is Session.GetRandomCode.
func (m *Module) GetRandomCode(ctx context.Context) (n uint32, err error) {
	err = m.Do(ctx, func(s *Session) error { n, err = s.GetRandomCode(ctx); return err })
	return n, err
}

// DownChar is Session.DownChar.
func (m *Module) DownChar(ctx context.Context, buf Buffer, data []byte) error {
	return m.Do(ctx, func(s *Session) error { return s.DownChar(ctx, buf, data) })
}

// DeletChar is Session.DeletChar.
func (m *Module) DeletChar(ctx context.Context, page, count int) error {
	return m.Do(ctx, func(s *Session) error { return s.DeletChar(ctx, page, count) })
}

// Empty is Session.Empty.
func (m *Module) Empty(ctx context.Context) error {
	return m.Do(ctx, func(s *Session) error { return s.Empty(ctx) })
}

// TemplateNum is Session.TemplateNum.
func (m *Module) TemplateNum(ctx context.Context) (n int, err error) {
	err = m.Do(ctx, func(s *Session) error { n, err = s.TemplateNum(ctx); return err })
	return n, err
}

// ReadIndexTable is Session.ReadIndexTable.
func (m *Module) ReadIndexTable(ctx context.Context, table int) (bits [32]byte, err error) {
	err = m.Do(ctx, func(s *Session) error { bits, err = s.ReadIndexTable(ctx, table); return err })
	return bits, err
}

// ReadIndex is Session.ReadIndex.
func (m *Module) ReadIndex(ctx context.Context, capacity int) (x Index, err error) {
	err = m.Do(ctx, func(s *Session) error { x, err = s.ReadIndex(ctx, capacity); return err })
	return x, err
}

// AuraLedConfig is Session.AuraLedConfig.
func (m *Module) AuraLedConfig(ctx context.Context, a Aura) error {
	return m.Do(ctx, func(s *Session) error { return s.AuraLedConfig(ctx, a) })
}
