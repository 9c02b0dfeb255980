// Package sales reads and validates the sales system's export files (CSV or
// XLSX) into rows ready for the store and rejects with a line and a reason.
// It is pure: no database, no network, no clock. Every data line of a file
// ends as exactly one of an accepted Row, a Reject or a blank line, so
// nothing read is lost (DESIGN invariant 6).
package sales

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Defaults for Options left zero.
const (
	DefaultMaxFileBytes = 50 << 20
	DefaultMaxCellBytes = 4 << 10
)

// maxRawBytes caps the raw text kept with a reject: enough to find the row,
// small enough that a runaway row does not bloat the store or the report.
const maxRawBytes = 8 << 10

// Errors that refuse a whole file. Read wraps them with the file name and the
// detail; test with errors.Is.
var (
	// ErrTooLarge: the file is above Options.MaxFileBytes.
	ErrTooLarge = errors.New("file too large")
	// ErrUnreadable: not a CSV or XLSX this package can read (wrong
	// encoding, legacy .xls, broken zip, unterminated quote, missing sheet).
	ErrUnreadable = errors.New("unreadable file")
	// ErrNoHeader: the file has no header row.
	ErrNoHeader = errors.New("no header row")
	// ErrMissingColumn: a required column is not in the header.
	ErrMissingColumn = errors.New("missing required column")
	// ErrDuplicateColumn: a known column appears twice in the header.
	ErrDuplicateColumn = errors.New("duplicate column")
)

// Options bound and steer Read. The zero value uses the defaults.
type Options struct {
	// MaxFileBytes refuses larger files (default 50 MiB).
	MaxFileBytes int64
	// MaxCellBytes rejects a row whose value in a known column is longer
	// (default 4 KiB).
	MaxCellBytes int
	// Sheet names the XLSX worksheet to read; empty means the first sheet.
	Sheet string
}

func (o Options) withDefaults() Options {
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxCellBytes <= 0 {
		o.MaxCellBytes = DefaultMaxCellBytes
	}
	return o
}

// File is one sales file read and validated.
//
// DataRows counts every entry after the header: each CSV record (however
// many physical lines its quoted values span), each empty line, and each
// XLSX row number after the header up to the last row in the sheet. Every
// one of them is exactly one of Rows, Rejects or Blank:
//
//	len(Rows) + len(Rejects) + Blank == DataRows
type File struct {
	Name     string // as passed to Read
	Hash     string // sha256 of the file's bytes, lower-case hex
	Format   string // "csv" or "xlsx"
	Rows     []Row
	Rejects  []Reject
	Blank    int
	DataRows int
}

// Row is an accepted sales row, values trimmed and typed.
type Row struct {
	Line         int // physical line (CSV, where the record starts) or row number (XLSX)
	SalesRef     string
	GivenNames   string
	Surname      string
	Email        string
	PlanNo       int
	CustNo       *int64 // nil when the column is absent or blank
	SIMType      string // SIMeSIM or SIMPhysical
	SIMSerial    string // set for physical SIMs
	AddressLine1 string
	Suburb       string
	State        string
	Postcode     string
	Notes        string
}

// SIM types.
const (
	SIMeSIM     = "esim"
	SIMPhysical = "physical"
)

// Reject is a data row that was not accepted, with the reason.
type Reject struct {
	Line   int
	Reason string
	Raw    string // the row's cells joined back as CSV (valid UTF-8, capped at 8 KiB)
}

// Read reads a whole sales file from r, named name (used for the format by
// extension and in messages), and validates every row.
//
// The format is XLSX when the content starts with the zip signature or the
// name ends in .xlsx/.xlsm, CSV otherwise. A returned error refuses the whole
// file; it wraps ErrTooLarge, ErrUnreadable, ErrNoHeader, ErrMissingColumn or
// ErrDuplicateColumn (or the reader's error) and names the file. Row problems
// are not errors: they are File.Rejects.
func Read(r io.Reader, name string, opts Options) (*File, error) {
	opts = opts.withDefaults()
	content, err := io.ReadAll(io.LimitReader(r, opts.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(content)) > opts.MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than the %s limit: %w", name, byteSize(opts.MaxFileBytes), ErrTooLarge)
	}
	sum := sha256.Sum256(content)
	f := &File{Name: name, Hash: hex.EncodeToString(sum[:])}
	b := &builder{f: f, opts: opts}

	ext := strings.ToLower(filepath.Ext(name))
	switch {
	case bytes.HasPrefix(content, []byte("PK\x03\x04")) || ext == ".xlsx" || ext == ".xlsm":
		f.Format = "xlsx"
		b.xlsx = true
		err = readXLSX(content, b)
	case bytes.HasPrefix(content, []byte{0xD0, 0xCF, 0x11, 0xE0}):
		err = fmt.Errorf("legacy .xls or encrypted workbook (save it as .xlsx or CSV UTF-8): %w", ErrUnreadable)
	default:
		f.Format = "csv"
		err = readCSV(content, b)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
