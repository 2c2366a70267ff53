// Package setupbin reads and writes setup.bin, the file that the MEBx applies
// from a USB key (spec/legacy.md §11).
//
// A file is a sequence of 512-byte chunks: a header (chunk 0) naming the
// format version by GUID, then DataRecordCount data records of
// DataRecordChunkCount chunks each. A record holds a list of variables
// (module, id, value), optionally "scrambled" (+17 on every byte after the
// 24-byte record header). All integers are little-endian.
//
// Decode keeps every variable, known or not, in file order; Encode writes the
// variables of each record sorted by (module, variable), the order every MEBx
// generation accepts. MarkUsed performs the write-back the BIOS does after a
// record was applied, touching only the bytes that change.
package setupbin

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Layout constants (spec/legacy.md §11, §14).
const (
	ChunkSize        = 512
	FileHeaderSize   = 40 // fixed part of chunk 0, before the module list
	RecordHeaderSize = 24 // data record header; entries start here
	EntryHeaderSize  = 8
	ScrambleDelta    = 17 // stored byte = (b + 17) mod 256 in scrambled records

	// FileFlagDoNotConsume (FileFlags bit 0, version 2 and later): the BIOS
	// leaves the file unchanged after applying a record, so one file serves
	// many machines.
	FileFlagDoNotConsume uint16 = 1

	// RecordTypeData is the RecordTypeIdentifier of a data record (0 = invalid).
	RecordTypeData uint32 = 1

	recordFlagValid     uint32 = 1
	recordFlagScrambled uint32 = 2
)

// Errors. Every error from Decode, Encode and MarkUsed wraps one of them
// (errors.Is) with the offending value.
var (
	ErrSize          = errors.New("setupbin: file size is not a whole number of 512-byte chunks")
	ErrUnknownGUID   = errors.New("setupbin: unknown file type GUID")
	ErrVersion       = errors.New("setupbin: version does not match the file type GUID")
	ErrHeader        = errors.New("setupbin: invalid file header")
	ErrRecordCount   = errors.New("setupbin: file size does not match the record count")
	ErrConsumed      = errors.New("setupbin: more records consumed than present")
	ErrRecordHeader  = errors.New("setupbin: invalid record header")
	ErrEntry         = errors.New("setupbin: invalid entry")
	ErrEntryOverflow = errors.New("setupbin: entry extends past the end of its record")
	ErrRecordFull    = errors.New("setupbin: variables do not fit in the record")
	ErrIndex         = errors.New("setupbin: no such record")
	ErrNotNext       = errors.New("setupbin: record is not the next unconsumed record")
	ErrVariable      = errors.New("setupbin: invalid variable value")
	ErrVersionTooOld = errors.New("setupbin: variable needs a newer file version")
	ErrPIDPPS        = errors.New("setupbin: invalid PID/PPS")
)

// versionInfo is one row of spec §11.2.
type versionInfo struct {
	guid   [16]byte // on-disk (EFI) byte order
	minors []uint8  // accepted minor versions; major == version
}

// versions returns the table of §11.2, indexed by version - 1.
func versions() [4]versionInfo {
	return [4]versionInfo{
		{[16]byte{0xb5, 0x16, 0xfb, 0x71, 0x87, 0xcb, 0xf9, 0x4a, 0xb4, 0x41, 0xca, 0x7b, 0x38, 0x35, 0x78, 0xf9}, []uint8{0}},
		{[16]byte{0x96, 0xb2, 0x81, 0x58, 0xcf, 0x6b, 0x72, 0x4c, 0x8b, 0x91, 0xa1, 0x5e, 0x51, 0x2e, 0x99, 0xc4}, []uint8{0, 1}},
		{[16]byte{0xa7, 0xf7, 0xf6, 0xc6, 0x89, 0xc4, 0xf6, 0x47, 0x93, 0xed, 0xe2, 0xe5, 0x02, 0x0d, 0xa5, 0x1d}, []uint8{0}},
		{[16]byte{0xaa, 0xa9, 0x34, 0x52, 0xe1, 0x29, 0xa9, 0x44, 0x8d, 0x4d, 0x08, 0x1c, 0x07, 0xb9, 0x63, 0x53}, []uint8{0}},
	}
}

// File is a decoded setup.bin.
type File struct {
	Version         int    // 1–4: the file type GUID and major version
	Minor           uint8  // minor version: 0, or 1 for version 2
	Flags           uint16 // FileFlags; FileFlagDoNotConsume and any unknown bits
	RecordsConsumed uint32 // DataRecordsConsumed
	HeaderChunks    uint16 // chunks of the file header; 0 means 1 when encoding
	RecordChunks    uint16 // chunks per data record; 0 means 1 when encoding
	// Modules is the header's module list as read. Encode writes it, in this
	// order, followed by any module the records use that it lacks
	// (ascending); nil means "the modules the records use".
	Modules []uint16
	Records []Record
}

// Record is one data record.
type Record struct {
	Type       uint32 // RecordTypeIdentifier; RecordTypeData for every record amtd writes
	Number     uint32 // RecordNumber (MeshCentral and amtd number data records from 1)
	Used       bool   // the valid flag is clear: applied (or never valid)
	Scrambled  bool   // bytes after the record header are stored +17
	OtherFlags uint32 // RecordFlags bits other than valid and scrambled, kept as found
	Vars       []Var
}

// DoNotConsume reports whether the BIOS leaves the file unchanged after
// applying a record (FileFlags bit 0, honoured from version 2 on).
func (f *File) DoNotConsume() bool {
	return f.Version >= 2 && f.Flags&FileFlagDoNotConsume != 0
}

// Next returns the index of the record the BIOS would apply next
// (DataRecordsConsumed) and whether that record is present and not used.
func (f *File) Next() (int, bool) {
	i := int(f.RecordsConsumed)
	if i >= len(f.Records) {
		return i, false
	}
	return i, !f.Records[i].Used
}

func (f *File) chunks() (hdr, rec int) {
	hdr, rec = int(f.HeaderChunks), int(f.RecordChunks)
	if hdr == 0 {
		hdr = 1
	}
	if rec == 0 {
		rec = 1
	}
	return hdr, rec
}

// Decode parses a setup.bin image. It checks the header consistency of §11.1
// (size, record count, consumed count, GUID/version pair) and the structure
// of every record; it does not judge variable values (see CheckVar).
func Decode(b []byte) (*File, error) {
	if len(b) < ChunkSize || len(b)%ChunkSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes", ErrSize, len(b))
	}
	f := &File{}
	var guid [16]byte
	copy(guid[:], b[:16])
	vt := versions()
	for i, v := range vt {
		if v.guid == guid {
			f.Version = i + 1
		}
	}
	if f.Version == 0 {
		return nil, fmt.Errorf("%w: % x", ErrUnknownGUID, guid[:])
	}
	le := binary.LittleEndian
	f.HeaderChunks = le.Uint16(b[16:])
	major, minor := b[24], b[25]
	f.Minor = minor
	f.Flags = le.Uint16(b[26:])
	count := le.Uint32(b[28:])
	f.RecordsConsumed = le.Uint32(b[32:])
	f.RecordChunks = le.Uint16(b[36:])
	if int(major) != f.Version || !slices.Contains(vt[f.Version-1].minors, minor) {
		return nil, fmt.Errorf("%w: GUID of version %d with version %d.%d", ErrVersion, f.Version, major, minor)
	}
	if f.HeaderChunks == 0 {
		return nil, fmt.Errorf("%w: header chunk count 0", ErrHeader)
	}
	if n := le.Uint32(b[20:]); n != 0 {
		return nil, fmt.Errorf("%w: header record number %d, want 0", ErrHeader, n)
	}
	if count > 0 && f.RecordChunks == 0 {
		return nil, fmt.Errorf("%w: %d records of 0 chunks", ErrHeader, count)
	}
	want := (uint64(f.HeaderChunks) + uint64(count)*uint64(f.RecordChunks)) * ChunkSize
	if uint64(len(b)) != want {
		return nil, fmt.Errorf("%w: %d records of %d chunks after %d header chunks need %d bytes, file has %d",
			ErrRecordCount, count, f.RecordChunks, f.HeaderChunks, want, len(b))
	}
	if f.RecordsConsumed > count {
		return nil, fmt.Errorf("%w: %d consumed of %d", ErrConsumed, f.RecordsConsumed, count)
	}
	for p := FileHeaderSize; p+2 <= int(f.HeaderChunks)*ChunkSize; p += 2 {
		m := le.Uint16(b[p:])
		if m == 0 {
			break
		}
		f.Modules = append(f.Modules, m)
	}
	recSize := int(f.RecordChunks) * ChunkSize
	off := int(f.HeaderChunks) * ChunkSize
	f.Records = make([]Record, 0, count)
	for i := range int(count) {
		r, err := decodeRecord(b[off:off+recSize], f.RecordChunks)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		f.Records = append(f.Records, r)
		off += recSize
	}
	return f, nil
}

func decodeRecord(b []byte, chunks uint16) (Record, error) {
	le := binary.LittleEndian
	flags := le.Uint32(b[4:])
	r := Record{
		Type:       le.Uint32(b[0:]),
		Used:       flags&recordFlagValid == 0,
		Scrambled:  flags&recordFlagScrambled != 0,
		OtherFlags: flags &^ (recordFlagValid | recordFlagScrambled),
		Number:     le.Uint32(b[20:]),
	}
	if c := le.Uint16(b[16:]); c != chunks {
		return r, fmt.Errorf("%w: chunk count %d, file header says %d", ErrRecordHeader, c, chunks)
	}
	if h := le.Uint16(b[18:]); h != RecordHeaderSize {
		return r, fmt.Errorf("%w: header byte count %d, want %d", ErrRecordHeader, h, RecordHeaderSize)
	}
	body := b[RecordHeaderSize:]
	if allZero(body) {
		// An empty record, or one the BIOS consumed: it zeroes the body
		// without regard to the scrambled flag (spec §11.3).
		return r, nil
	}
	if r.Scrambled {
		body = bytes.Clone(body)
		for i := range body {
			body[i] -= ScrambleDelta
		}
	}
	p := 0
	for p < len(body) {
		if len(body)-p < EntryHeaderSize {
			if allZero(body[p:]) {
				break
			}
			return r, fmt.Errorf("%w: %d bytes left at offset %d, an entry header needs %d", ErrEntryOverflow, len(body)-p, RecordHeaderSize+p, EntryHeaderSize)
		}
		mod, id, l := le.Uint16(body[p:]), le.Uint16(body[p+2:]), int(le.Uint16(body[p+4:]))
		if mod == 0 && id == 0 && l == 0 {
			break
		}
		if mod == 0 || id == 0 {
			return r, fmt.Errorf("%w: module %d variable %d at offset %d", ErrEntry, mod, id, RecordHeaderSize+p)
		}
		end := p + EntryHeaderSize + l
		if end > len(body) {
			return r, fmt.Errorf("%w: %d.%d of %d bytes at offset %d", ErrEntryOverflow, mod, id, l, RecordHeaderSize+p)
		}
		r.Vars = append(r.Vars, Var{ID: MakeVarID(mod, id), Value: bytes.Clone(body[p+EntryHeaderSize : end])})
		p = end + pad4(l)
	}
	return r, nil
}

func pad4(l int) int { return (4 - l%4) % 4 }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Encode writes f as a setup.bin image. Variables are written sorted by
// (module, variable) (stable for repeated ids such as 2.8); the module list
// is f.Modules plus the modules the records use. It fails when a record's variables do
// not fit, a value is longer than 65535 bytes, or a SHA-256/SHA-384
// user-defined hash (2.8) is put in a file older than version 3.
func Encode(f *File) ([]byte, error) {
	if f.Version < 1 || f.Version > 4 {
		return nil, fmt.Errorf("%w: version %d", ErrVersion, f.Version)
	}
	vi := versions()[f.Version-1]
	if !slices.Contains(vi.minors, f.Minor) {
		return nil, fmt.Errorf("%w: version %d.%d", ErrVersion, f.Version, f.Minor)
	}
	if f.RecordsConsumed > uint32(len(f.Records)) {
		return nil, fmt.Errorf("%w: %d consumed of %d", ErrConsumed, f.RecordsConsumed, len(f.Records))
	}
	hdrChunks, recChunks := f.chunks()
	recSize := recChunks * ChunkSize
	out := make([]byte, (hdrChunks+len(f.Records)*recChunks)*ChunkSize)
	le := binary.LittleEndian

	var used []uint16
	for _, r := range f.Records {
		for _, v := range r.Vars {
			if m := v.ID.Module(); m != 0 && !slices.Contains(used, m) && !slices.Contains(f.Modules, m) {
				used = append(used, v.ID.Module())
			}
		}
	}
	slices.Sort(used)
	modules := append(slices.Clone(f.Modules), used...)
	if slices.Contains(modules, 0) {
		return nil, fmt.Errorf("%w: module 0 in the module list", ErrHeader)
	}
	if FileHeaderSize+2*(len(modules)+1) > hdrChunks*ChunkSize {
		return nil, fmt.Errorf("%w: %d modules", ErrHeader, len(modules))
	}

	copy(out, vi.guid[:])
	le.PutUint16(out[16:], uint16(hdrChunks))
	le.PutUint16(out[18:], uint16(FileHeaderSize+2+2*len(modules)))
	out[24], out[25] = byte(f.Version), f.Minor
	le.PutUint16(out[26:], f.Flags)
	le.PutUint32(out[28:], uint32(len(f.Records)))
	le.PutUint32(out[32:], f.RecordsConsumed)
	le.PutUint16(out[36:], uint16(recChunks))
	for i, m := range modules {
		le.PutUint16(out[FileHeaderSize+2*i:], m)
	}

	off := hdrChunks * ChunkSize
	for i, r := range f.Records {
		if err := encodeRecord(out[off:off+recSize], &r, f.Version, uint16(recChunks)); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		off += recSize
	}
	return out, nil
}

func encodeRecord(b []byte, r *Record, version int, chunks uint16) error {
	le := binary.LittleEndian
	flags := r.OtherFlags &^ (recordFlagValid | recordFlagScrambled)
	if !r.Used {
		flags |= recordFlagValid
	}
	if r.Scrambled {
		flags |= recordFlagScrambled
	}
	le.PutUint32(b[0:], r.Type)
	le.PutUint32(b[4:], flags)
	le.PutUint16(b[16:], chunks)
	le.PutUint16(b[18:], RecordHeaderSize)
	le.PutUint32(b[20:], r.Number)

	vars := slices.Clone(r.Vars)
	slices.SortStableFunc(vars, func(a, b Var) int { return cmp.Compare(a.ID, b.ID) })
	p := RecordHeaderSize
	for _, v := range vars {
		if v.ID.Module() == 0 || v.ID.Var() == 0 {
			return fmt.Errorf("%w: variable %s", ErrEntry, v.ID)
		}
		if len(v.Value) > 0xffff {
			return fmt.Errorf("%w: %s is %d bytes", ErrVariable, v.ID, len(v.Value))
		}
		if v.ID == UserDefinedCertAdd && version < 3 && len(v.Value) > 0 && v.Value[0] != 1 {
			return fmt.Errorf("%w: %s with a SHA-256/SHA-384 hash needs version 3, file is version %d", ErrVersionTooOld, v.ID, version)
		}
		n := EntryHeaderSize + len(v.Value) + pad4(len(v.Value))
		if p+n > len(b) {
			return fmt.Errorf("%w: %s needs %d bytes at offset %d of %d", ErrRecordFull, v.ID, n, p, len(b))
		}
		le.PutUint16(b[p:], v.ID.Module())
		le.PutUint16(b[p+2:], v.ID.Var())
		le.PutUint16(b[p+4:], uint16(len(v.Value)))
		copy(b[p+EntryHeaderSize:], v.Value)
		p += n
	}
	if r.Scrambled {
		for i := RecordHeaderSize; i < len(b); i++ {
			b[i] += ScrambleDelta
		}
	}
	return nil
}

// MarkUsed applies to the model what the package-level MarkUsed does to an
// image: unless the file does not consume records, record index (which must
// be the next one) becomes used with no variables and RecordsConsumed grows
// by one. It reports whether anything changed.
func (f *File) MarkUsed(index int) (bool, error) {
	if index < 0 || index >= len(f.Records) {
		return false, fmt.Errorf("%w: index %d of %d", ErrIndex, index, len(f.Records))
	}
	if index != int(f.RecordsConsumed) {
		return false, fmt.Errorf("%w: index %d, next is %d", ErrNotNext, index, f.RecordsConsumed)
	}
	if f.DoNotConsume() {
		return false, nil
	}
	f.Records[index].Used = true
	f.Records[index].Vars = nil
	f.RecordsConsumed++
	return true, nil
}

// MarkUsed performs, in place on the image b, what the BIOS writes back after
// the MEBx has applied record index successfully (spec §11.3): unless the
// file is version 2 or later with FileFlags bit 0 set (do not consume), the
// record's valid flag is cleared, its body after the 24-byte header is zeroed
// (raw zeros, also in a scrambled record; Decode reads an all-zero body as
// empty), and DataRecordsConsumed is incremented. Only those bytes
// change. It reports whether anything was written. index must be the next
// unconsumed record (File.Next).
func MarkUsed(b []byte, index int) (changed bool, err error) {
	f, err := Decode(b)
	if err != nil {
		return false, err
	}
	if index < 0 || index >= len(f.Records) {
		return false, fmt.Errorf("%w: index %d of %d", ErrIndex, index, len(f.Records))
	}
	if index != int(f.RecordsConsumed) {
		return false, fmt.Errorf("%w: index %d, next is %d", ErrNotNext, index, f.RecordsConsumed)
	}
	if f.DoNotConsume() {
		return false, nil
	}
	hdrChunks, recChunks := f.chunks()
	recSize := recChunks * ChunkSize
	rec := b[hdrChunks*ChunkSize+index*recSize:][:recSize]
	le := binary.LittleEndian
	flags := le.Uint32(rec[4:])
	le.PutUint32(rec[4:], flags&^recordFlagValid)
	clear(rec[RecordHeaderSize:])
	le.PutUint32(b[32:], f.RecordsConsumed+1)
	return true, nil
}
