package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/jobs/sales"
	"github.com/esimbatch/esimbatch/repo"
)

// importStore is what the import path needs from the store.
type importStore interface {
	Import(ctx context.Context, f repo.ImportFile, rows []repo.NewActivation, rejects []repo.ImportReject, now time.Time) (repo.ImportResult, error)
	ImportedHash(ctx context.Context, hash string) (bool, error)
	RecordRefusedImport(ctx context.Context, f repo.RefusedImport, now time.Time) (bool, error)
}

// Subfolders of IMPORT_DIR that files are moved to once handled.
const (
	ProcessedDir = "processed"
	RejectedDir  = "rejected"
)

// ImportOptions configure an Importer: the sales file limits and the XLSX
// sheet to read (empty: the first sheet).
type ImportOptions struct {
	sales.Options
}

// Importer loads sales files into the store, one transaction per file.
type Importer struct {
	store importStore
	log   *slog.Logger
	opts  ImportOptions
}

// NewImporter returns an Importer over store. A nil log discards.
func NewImporter(store importStore, log *slog.Logger, opts ImportOptions) *Importer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{store: store, log: log, opts: opts}
}

// FileResult is what happened to one file. When Err is set the file was not
// imported (it could not be read, was refused whole, or the store failed)
// and the counts are zero. Otherwise Accepted + Duplicate + Rejected + Blank
// == DataRows, unless AlreadyImported (same content imported before, under
// any name: nothing written, all counts zero).
type FileResult struct {
	File            string // the path as given
	Accepted        int
	Duplicate       int
	Rejected        int
	Blank           int
	DataRows        int
	AlreadyImported bool
	Err             error
	Rejects         []sales.Reject // the file's rejected rows (empty when AlreadyImported)
	MovedTo         string         // ImportDir: where the file went; "" when it stayed
}

// Summary is the one-line report for the file:
// "FILE: accepted N, duplicate N, rejected N, blank N" (", already imported"
// when so), or "FILE: not imported: ERR".
func (r FileResult) Summary() string {
	if r.Err != nil {
		// The reader's errors start with the file name already.
		return fmt.Sprintf("%s: not imported: %s", r.File, strings.TrimPrefix(r.Err.Error(), r.File+": "))
	}
	s := fmt.Sprintf("%s: accepted %d, duplicate %d, rejected %d, blank %d", r.File, r.Accepted, r.Duplicate, r.Rejected, r.Blank)
	if r.AlreadyImported {
		s += ", already imported"
	}
	return s
}

// errStore marks a store failure, which stops an import run (the database
// is likely down for every file) while a bad file does not.
type errStore struct{ err error }

func (e errStore) Error() string { return e.err.Error() }
func (e errStore) Unwrap() error { return e.err }

// ImportFiles imports each file in order (batch import). A file that cannot
// be read or is refused whole gets FileResult.Err and the others still go
// in. The returned error is a store or context failure: it stops the run,
// and the file it happened on has Err set; files after it are not in the
// results.
func (im *Importer) ImportFiles(ctx context.Context, paths []string, now time.Time) ([]FileResult, error) {
	results := make([]FileResult, 0, len(paths))
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return results, fmt.Errorf("import: %w", err)
		}
		content, err := im.readBounded(p)
		if err != nil {
			results = append(results, im.logResult(ctx, FileResult{File: p, Err: err}))
			continue
		}
		res, err := im.importContent(ctx, p, content, now)
		results = append(results, im.logResult(ctx, res))
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// ImportDir is the import phase's pick-up of dir (IMPORT_DIR): every *.csv
// and *.xlsx directly in it, in name order (hidden files and Excel's ~$ lock
// files are left alone). A file whose content was imported before is
// skipped by hash; an imported file is moved to dir/processed/ only after
// its rows are committed; a file refused whole is recorded in the store
// (the next report lists it, and so does `batch status`), then moved to
// dir/rejected/ with NAME.error.txt beside it saying why. A name already
// taken in the target folder gets a -1, -2, ... suffix, so no file is ever
// overwritten. A file that could not be read or committed stays where it
// is for the next run.
//
// The returned error reports what stops the phase or needs an operator:
// the folder cannot be listed, the store failed (later files wait for the
// next run), or a file could not be moved (its rows are committed; the next
// run finds it by hash and moves it).
func (im *Importer) ImportDir(ctx context.Context, dir string, now time.Time) ([]FileResult, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("import dir: %w", err)
	}
	var results []FileResult
	var moveErrs []error
	for _, e := range entries {
		if !isSalesFile(e) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return results, errors.Join(fmt.Errorf("import dir: %w", err), errors.Join(moveErrs...))
		}
		path := filepath.Join(dir, e.Name())
		res, err := im.importDirFile(ctx, dir, path, now)
		if err != nil && !errors.As(err, new(errStore)) {
			moveErrs = append(moveErrs, err)
			err = nil
		}
		results = append(results, im.logResult(ctx, res))
		if err != nil {
			return results, errors.Join(err, errors.Join(moveErrs...))
		}
	}
	return results, errors.Join(moveErrs...)
}

// importDirFile handles one file of ImportDir; errors are errStore (stop)
// or a failed move.
func (im *Importer) importDirFile(ctx context.Context, dir, path string, now time.Time) (FileResult, error) {
	content, err := im.readBounded(path)
	if err != nil {
		if errors.Is(err, sales.ErrTooLarge) {
			return im.refuse(ctx, dir, "", FileResult{File: path, Err: err}, now)
		}
		// An I/O problem (permissions, a vanished file): leave it be.
		return FileResult{File: path, Err: err}, nil
	}
	sum := sha256.Sum256(content)
	hash := hex.EncodeToString(sum[:])
	done, err := im.store.ImportedHash(ctx, hash)
	if err != nil {
		return FileResult{File: path, Err: err}, errStore{fmt.Errorf("import %s: %w", path, err)}
	}
	if done {
		// Imported before (maybe by a run that stopped before the move).
		return im.move(dir, ProcessedDir, FileResult{File: path, AlreadyImported: true})
	}
	res, err := im.importContent(ctx, path, content, now)
	switch {
	case err != nil:
		return res, err
	case res.Err != nil:
		return im.refuse(ctx, dir, hash, res, now)
	default:
		return im.move(dir, ProcessedDir, res)
	}
}

// refuse records a file refused whole (content hash hash, "" when unknown),
// then moves it to rejected/ and writes the reason beside it. Recorded
// first: a move that fails leaves the file for the next run, which refuses
// it again and finds it recorded (once per name and content).
func (im *Importer) refuse(ctx context.Context, dir, hash string, res FileResult, now time.Time) (FileResult, error) {
	if _, err := im.recordRefused(ctx, hash, RejectedDir, res, now); err != nil {
		return res, err
	}
	res, err := im.move(dir, RejectedDir, res)
	if err != nil {
		return res, err
	}
	note := res.MovedTo + ".error.txt"
	if werr := os.WriteFile(note, []byte(res.Err.Error()+"\n"), 0o644); werr != nil {
		return res, fmt.Errorf("import: write %s: %w", note, werr)
	}
	return res, nil
}

// recordRefused stores refused res for the report and `batch status`: the
// file's name, hash, res.Err without the path it starts with, and the
// IMPORT_DIR subfolder it goes to. A store failure is an errStore.
func (im *Importer) recordRefused(ctx context.Context, hash, movedTo string, res FileResult, now time.Time) (bool, error) {
	isNew, err := im.store.RecordRefusedImport(ctx, repo.RefusedImport{
		File: filepath.Base(res.File), ContentHash: hash, MovedTo: movedTo, Reason: refusedReason(res),
	}, now)
	if err != nil {
		return false, errStore{fmt.Errorf("import %s: %w", res.File, err)}
	}
	return isNew, nil
}

// refusedReason is why the file was refused, without its path: the reader's
// errors start with it ("PATH: ..."), I/O errors carry it inside.
func refusedReason(res FileResult) string {
	msg := res.Err.Error()
	msg = strings.TrimPrefix(msg, res.File+": ")
	msg = strings.TrimPrefix(msg, "import: ")
	return strings.ReplaceAll(msg, res.File, filepath.Base(res.File))
}

// move renames res.File into dir/sub without overwriting anything.
func (im *Importer) move(dir, sub string, res FileResult) (FileResult, error) {
	target := filepath.Join(dir, sub)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return res, fmt.Errorf("import: move %s: %w", res.File, err)
	}
	dst, err := moveNoClobber(res.File, target)
	if err != nil {
		return res, fmt.Errorf("import: move %s to %s: %w", res.File, target, err)
	}
	res.MovedTo = dst
	return res, nil
}

// moveNoClobber moves src into folder under its name, or name-1, name-2, ...
// when taken. os.Link fails on an existing name, so a clash can never
// overwrite a file; where hard links are not supported it falls back to
// checking before the rename (one runner per credential holds the run lock).
func moveNoClobber(src, folder string) (string, error) {
	base := filepath.Base(src)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for i := 0; i < 10000; i++ {
		name := base
		if i > 0 {
			name = stem + "-" + strconv.Itoa(i) + ext
		}
		dst := filepath.Join(folder, name)
		err := os.Link(src, dst)
		switch {
		case err == nil:
			return dst, os.Remove(src)
		case errors.Is(err, fs.ErrExist):
			continue
		}
		if _, serr := os.Lstat(dst); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
		return dst, os.Rename(src, dst)
	}
	return "", fmt.Errorf("no free name for %s in %s", base, folder)
}

// isSalesFile picks *.csv and *.xlsx regular files, not hidden files or
// Excel's ~$ lock files.
func isSalesFile(e fs.DirEntry) bool {
	name := e.Name()
	if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~$") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv", ".xlsx":
		return true
	}
	return false
}

// readBounded reads a file, refusing it past the size limit without reading
// it all.
func (im *Importer) readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	limit := im.opts.MaxFileBytes
	if limit <= 0 {
		limit = sales.DefaultMaxFileBytes
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("import: read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than the %d byte limit: %w", path, limit, sales.ErrTooLarge)
	}
	return b, nil
}

// importContent validates one file and loads it in one store transaction.
// A file refused by validation is a result with Err and a nil error; a
// store failure is both.
func (im *Importer) importContent(ctx context.Context, path string, content []byte, now time.Time) (FileResult, error) {
	res := FileResult{File: path}
	f, err := sales.Read(bytes.NewReader(content), path, im.opts.Options)
	if err != nil {
		res.Err = err
		return res, nil
	}
	rows := make([]repo.NewActivation, len(f.Rows))
	for i, r := range f.Rows {
		rows[i] = repo.NewActivation{
			Line: r.Line, SalesRef: r.SalesRef, GivenNames: r.GivenNames, Surname: r.Surname, Email: r.Email,
			AddressLine1: r.AddressLine1, Suburb: r.Suburb, AddrState: r.State, Postcode: r.Postcode, Notes: r.Notes,
			CustNo: r.CustNo, PlanNo: r.PlanNo, SIMType: r.SIMType, SIMSerial: r.SIMSerial,
		}
	}
	rejects := make([]repo.ImportReject, len(f.Rejects))
	for i, r := range f.Rejects {
		rejects[i] = repo.ImportReject{Line: r.Line, Reason: r.Reason, Raw: r.Raw}
	}
	ir, err := im.store.Import(ctx, repo.ImportFile{
		Name: filepath.Base(path), Hash: f.Hash, DataRows: f.DataRows, Blank: f.Blank,
	}, rows, rejects, now)
	if err != nil {
		res.Err = err
		return res, errStore{fmt.Errorf("import %s: %w", path, err)}
	}
	res.AlreadyImported = ir.AlreadyImported
	if ir.AlreadyImported {
		return res, nil
	}
	res.Accepted, res.Duplicate, res.Rejected, res.Blank = ir.Accepted, ir.Duplicate, ir.Rejected, ir.Blank
	res.DataRows = f.DataRows
	res.Rejects = f.Rejects
	if sum := res.Accepted + res.Duplicate + res.Rejected + res.Blank; sum != res.DataRows {
		// Invariant 6: the store must have taken every row. Committed
		// already, so say it loudly rather than hide it.
		im.log.ErrorContext(ctx, "import counts do not add up", "file", path, "counted", sum, "data_rows", res.DataRows)
	}
	return res, nil
}

func (im *Importer) logResult(ctx context.Context, r FileResult) FileResult {
	attrs := []any{"file", r.File, "accepted", r.Accepted, "duplicate", r.Duplicate, "rejected", r.Rejected,
		"blank", r.Blank, "data_rows", r.DataRows, "already_imported", r.AlreadyImported}
	if r.MovedTo != "" {
		attrs = append(attrs, "moved_to", r.MovedTo)
	}
	if r.Err != nil {
		im.log.ErrorContext(ctx, "import file not imported", append(attrs, "err", r.Err)...)
	} else {
		im.log.InfoContext(ctx, "import file", attrs...)
	}
	return r
}

// DirPhase is the import phase of a pass over dir (IMPORT_DIR), shaped for
// the runner: counts of files and rows, and an error only when the phase
// could not do its work (see ImportDir). Refused files are counted, not
// errors: they are moved to rejected/ for the sales team.
func (im *Importer) DirPhase(dir string) func(ctx context.Context, now time.Time) (map[string]int, error) {
	return func(ctx context.Context, now time.Time) (map[string]int, error) {
		results, err := im.ImportDir(ctx, dir, now)
		counts := map[string]int{}
		for _, r := range results {
			counts["files"]++
			counts["accepted"] += r.Accepted
			counts["duplicate"] += r.Duplicate
			counts["rejected"] += r.Rejected
			counts["blank"] += r.Blank
			if r.AlreadyImported {
				counts["already_imported"]++
			}
			if r.Err != nil {
				counts["refused"]++
			}
		}
		return counts, err
	}
}
