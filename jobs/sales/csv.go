package sales

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// readCSV reads a CSV file (UTF-8, optional BOM, comma or semicolon) into b.
func readCSV(content []byte, b *builder) error {
	if bytes.HasPrefix(content, []byte{0xFF, 0xFE}) || bytes.HasPrefix(content, []byte{0xFE, 0xFF}) {
		return fmt.Errorf("UTF-16 text (save the file as CSV UTF-8): %w", ErrUnreadable)
	}
	content = bytes.TrimPrefix(content, []byte("\xEF\xBB\xBF"))
	if looksUTF16(content) {
		return fmt.Errorf("UTF-16 text without a byte-order mark (save the file as CSV UTF-8): %w", ErrUnreadable)
	}

	r := csv.NewReader(bytes.NewReader(content))
	r.Comma = detectSeparator(content)
	r.FieldsPerRecord = -1
	r.LazyQuotes = false
	r.ReuseRecord = true

	// The header is the first record; empty lines before it are not data.
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("empty file: %w", ErrNoHeader)
	}
	if err != nil {
		return fmt.Errorf("header: %w: %w", ErrUnreadable, err)
	}
	line, _ := r.FieldPos(0)
	if err := b.setHeader(append([]string(nil), header...), line); err != nil {
		return err
	}

	// One allocation for the rows instead of repeated growth: the line count
	// is an upper bound on the records.
	b.f.Rows = make([]Row, 0, bytes.Count(content, []byte("\n"))+1)

	// Physical lines are counted from the reader's byte offsets: encoding/csv
	// skips empty lines silently, and each one must be counted as blank.
	off := r.InputOffset()
	consumed := bytes.Count(content[:off], []byte("\n")) // lines up to the end of the last record
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		next := r.InputOffset()
		span := content[off:next]
		var start int
		var pe *csv.ParseError
		switch {
		case err == nil:
			start, _ = r.FieldPos(0)
		case errors.As(err, &pe):
			start = pe.StartLine
			if errors.Is(pe.Err, csv.ErrQuote) && next >= int64(len(content)) && pe.Line > pe.StartLine {
				// An opening quote never closed swallows the rest of the
				// file into one value: refuse rather than lose those rows.
				return fmt.Errorf("line %d: quoted value never closed (runs to the end of the file): %w", pe.StartLine, ErrUnreadable)
			}
		default:
			return fmt.Errorf("line %d: %w", consumed+1, err)
		}
		if skipped := start - consumed - 1; skipped > 0 {
			b.blank(skipped)
		}
		consumed += bytes.Count(span, []byte("\n"))
		if consumed < start {
			consumed = start // last line without a newline
		}
		off = next
		if err != nil {
			raw := strings.TrimLeft(string(span), "\r\n")
			raw = strings.TrimRight(raw, "\r\n")
			b.reject(start, fmt.Sprintf("not valid CSV: %v", pe.Err), raw)
			continue
		}
		b.record(start, rec)
	}
	// Empty lines after the last record.
	if n := bytes.Count(content[off:], []byte("\n")); n > 0 {
		b.blank(n)
	}
	return nil
}

// detectSeparator picks ';' when the header line has more semicolons than
// commas outside quotes, ',' otherwise.
func detectSeparator(content []byte) rune {
	commas, semis := 0, 0
	inQuote := false
scan:
	for _, c := range content {
		switch c {
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				commas++
			}
		case ';':
			if !inQuote {
				semis++
			}
		case '\n':
			if !inQuote && commas+semis > 0 {
				break scan
			}
		}
	}
	if semis > commas {
		return ';'
	}
	return ','
}

// looksUTF16 reports whether content is UTF-16 without a byte-order mark:
// ASCII text in UTF-16 has a NUL in every other byte, which UTF-8 text never
// has. The first 512 bytes decide.
func looksUTF16(content []byte) bool {
	head := content[:min(len(content), 512)]
	if len(head) < 4 {
		return false
	}
	even, odd := 0, 0
	for i, c := range head {
		if c == 0 {
			if i%2 == 0 {
				even++
			} else {
				odd++
			}
		}
	}
	half := len(head) / 2
	return even > half*3/4 || odd > half*3/4
}
