package sales

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Columns, by header name (DESIGN "Sales import format").
const (
	colSalesRef = iota
	colGivenNames
	colSurname
	colEmail
	colPlanNo
	colCustNo
	colSIMType
	colSIMSerial
	colAddressLine1
	colSuburb
	colState
	colPostcode
	colNotes
	numCols
)

var columnNames = [numCols]string{
	"sales_ref", "given_names", "surname", "email", "plan_no", "cust_no", "sim_type",
	"sim_serial", "address_line1", "suburb", "state", "postcode", "notes",
}

var requiredColumns = []int{colSalesRef, colEmail, colPlanNo}

// headerKey folds a header cell so that "Sales Ref", "sales_ref",
// " SALES-REF " and "SalesRef" all match: lower case, without spaces,
// hyphens, underscores or a BOM.
func headerKey(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "\uFEFF")
	var sb strings.Builder
	for _, r := range strings.ToLower(s) {
		switch r {
		case ' ', '\t', '-', '_', '\u00a0':
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// columnByKey maps folded header names to columns; built per call to avoid
// a package-level mutable map.
func columnByKey() map[string]int {
	m := make(map[string]int, numCols)
	for i, n := range columnNames {
		m[headerKey(n)] = i
	}
	return m
}

// builder classifies records of either format into a File.
type builder struct {
	f    *File
	opts Options
	xlsx bool

	index    [numCols]int // field index per column, -1 when absent
	header   []string     // header cells as written (for messages)
	firstRef map[string]int
}

// setHeader maps the header row; errors refuse the file.
func (b *builder) setHeader(cells []string, line int) error {
	for i := range b.index {
		b.index[i] = -1
	}
	keys := columnByKey()
	for i, c := range cells {
		col, ok := keys[headerKey(c)]
		if !ok {
			continue // unknown columns are ignored
		}
		if prev := b.index[col]; prev >= 0 {
			return fmt.Errorf("line %d: column %q appears twice (%q and %q): %w",
				line, columnNames[col], strings.TrimSpace(cells[prev]), strings.TrimSpace(c), ErrDuplicateColumn)
		}
		b.index[col] = i
	}
	for _, col := range requiredColumns {
		if b.index[col] < 0 {
			return fmt.Errorf("header on line %d has no %q column: %w", line, columnNames[col], ErrMissingColumn)
		}
	}
	b.header = cells
	b.firstRef = make(map[string]int)
	return nil
}

func (b *builder) blank(n int) {
	b.f.Blank += n
	b.f.DataRows += n
}

func (b *builder) reject(line int, reason, raw string) {
	b.f.DataRows++
	b.f.Rejects = append(b.f.Rejects, Reject{Line: line, Reason: reason, Raw: cleanRaw(raw)})
}

// record classifies one data record: blank, accepted or rejected.
func (b *builder) record(line int, cells []string) {
	if isBlank(cells) {
		b.blank(1)
		return
	}
	if reason := b.check(cells); reason != "" {
		b.reject(line, reason, joinCSV(cells))
		return
	}
	row, problems := b.validate(line, cells)
	if len(problems) > 0 {
		b.reject(line, strings.Join(problems, "; "), joinCSV(cells))
		return
	}
	b.f.DataRows++
	b.firstRef[row.SalesRef] = line
	b.f.Rows = append(b.f.Rows, row)
}

func isBlank(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// check finds problems with the record as a whole: encoding, NULs (which
// PostgreSQL text refuses), shifted columns and oversized cells.
func (b *builder) check(cells []string) string {
	for i, c := range cells {
		if !utf8.ValidString(c) {
			return fmt.Sprintf("%s is not valid UTF-8 (save the file as CSV UTF-8 or XLSX)", b.cellName(i))
		}
		if strings.ContainsRune(c, 0) {
			return fmt.Sprintf("%s contains a NUL character", b.cellName(i))
		}
	}
	if len(cells) > len(b.header) {
		for _, c := range cells[len(b.header):] {
			if strings.TrimSpace(c) != "" {
				return fmt.Sprintf("%d values but the header has %d columns (an unquoted separator inside a value?)",
					len(cells), len(b.header))
			}
		}
	}
	for col, i := range b.index {
		if i >= 0 && i < len(cells) && len(cells[i]) > b.opts.MaxCellBytes {
			return fmt.Sprintf("%s: value is %d bytes, above the %s cell limit",
				columnNames[col], len(cells[i]), byteSize(int64(b.opts.MaxCellBytes)))
		}
	}
	return ""
}

func (b *builder) cellName(i int) string {
	for col, idx := range b.index {
		if idx == i {
			return columnNames[col]
		}
	}
	if i < len(b.header) && strings.TrimSpace(b.header[i]) != "" {
		return fmt.Sprintf("column %q", strings.TrimSpace(b.header[i]))
	}
	return fmt.Sprintf("column %d", i+1)
}

// validate types and checks the fields; it returns every problem found.
func (b *builder) validate(line int, cells []string) (Row, []string) {
	get := func(col int) string {
		i := b.index[col]
		if i < 0 || i >= len(cells) {
			return ""
		}
		return strings.TrimSpace(cells[i])
	}
	row := Row{
		Line:         line,
		SalesRef:     get(colSalesRef),
		GivenNames:   get(colGivenNames),
		Surname:      get(colSurname),
		Email:        get(colEmail),
		SIMSerial:    get(colSIMSerial),
		AddressLine1: get(colAddressLine1),
		Suburb:       get(colSuburb),
		State:        get(colState),
		Postcode:     get(colPostcode),
		Notes:        get(colNotes),
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if row.SalesRef == "" {
		add("sales_ref: required")
	} else if first, ok := b.firstRef[row.SalesRef]; ok {
		add("sales_ref %q repeats line %d", row.SalesRef, first)
	}

	if row.Email == "" {
		add("email: required")
	} else if err := checkEmail(row.Email); err != "" {
		add("email %q: %s", row.Email, err)
	}

	if v := get(colPlanNo); v == "" {
		add("plan_no: required")
	} else if n, ok := b.parseInt(v); !ok || n <= 0 || n > math.MaxInt32 {
		add("plan_no %q: not a whole number from 1 to %d", v, math.MaxInt32)
	} else {
		row.PlanNo = int(n)
	}

	if v := get(colCustNo); v != "" {
		if n, ok := b.parseInt(v); !ok || n <= 0 {
			add("cust_no %q: not a positive whole number", v)
		} else {
			row.CustNo = &n
		}
	}

	// A row without a customer number creates the customer (addCustomer),
	// which needs a name: refused here, with the fields named, rather than
	// failing at Octane once the row is on its way.
	if row.CustNo == nil && get(colCustNo) == "" && row.GivenNames == "" && row.Surname == "" {
		add("given_names or surname: required when cust_no is empty (the customer is created)")
	}

	switch t := strings.ToLower(get(colSIMType)); t {
	case "", SIMeSIM:
		row.SIMType = SIMeSIM
		// A serial means nothing for an eSIM; the activation does not carry it.
		row.SIMSerial = ""
	case SIMPhysical:
		row.SIMType = SIMPhysical
		if row.SIMSerial == "" {
			add("sim_serial: required for a physical SIM")
		} else if err := checkSerial(row.SIMSerial); err != "" {
			add("sim_serial %q: %s", row.SIMSerial, err)
		}
	default:
		add("sim_type %q: must be esim or physical", get(colSIMType))
	}
	return row, problems
}

// checkEmail accepts a bare address (no display name, no angle brackets)
// whose domain has a dot; it returns the problem or "".
func checkEmail(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "not an email address"
	}
	at := strings.LastIndexByte(s, '@')
	if !strings.Contains(s[at+1:], ".") {
		return "the domain has no dot"
	}
	return ""
}

// parseInt parses a whole number. In XLSX a number cell may be stored as
// "12345.0" or "1.2345E4"; those are accepted when integral.
func (b *builder) parseInt(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if !b.xlsx {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// checkSerial validates a physical SIM serial: letters and digits only, and
// an ICCID-style all-digit serial of 19 or 20 digits must pass Luhn.
func checkSerial(s string) string {
	allDigits := true
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
			allDigits = false
		default:
			return "only letters and digits allowed (a number shown in scientific notation? format the column as text)"
		}
	}
	if allDigits && (len(s) == 19 || len(s) == 20) && !luhn(s) {
		return "ICCID check digit (Luhn) does not match"
	}
	return ""
}

// luhn reports whether the digit string s passes the Luhn check.
func luhn(s string) bool {
	sum := 0
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// joinCSV writes cells back as one CSV line (no trailing newline).
func joinCSV(cells []string) string {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(cells) // a bytes.Buffer does not fail
	w.Flush()
	return strings.TrimSuffix(buf.String(), "\n")
}

// cleanRaw makes raw text safe to store: valid UTF-8, no NULs, capped.
func cleanRaw(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	if len(s) > maxRawBytes {
		cut := maxRawBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
