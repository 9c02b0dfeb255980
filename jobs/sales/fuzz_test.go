package sales

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F, pattern string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds for %s: %v", pattern, err)
	}
	var seeds [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// fuzzRead reads data and checks the accounting invariant on success.
func fuzzRead(t *testing.T, data []byte, name string) {
	file, err := Read(bytes.NewReader(data), name, Options{MaxCellBytes: 64, MaxFileBytes: 1 << 20})
	if err != nil {
		return
	}
	if got := len(file.Rows) + len(file.Rejects) + file.Blank; got != file.DataRows {
		t.Fatalf("rows %d + rejects %d + blank %d != DataRows %d", len(file.Rows), len(file.Rejects), file.Blank, file.DataRows)
	}
	for _, r := range file.Rows {
		if r.SalesRef == "" || r.Email == "" || r.PlanNo <= 0 || r.Line < 1 {
			t.Fatalf("accepted an invalid row: %+v", r)
		}
	}
}

func FuzzReadCSV(f *testing.F) {
	for _, s := range addSeeds(f, "*.csv") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRead(t, data, "fuzz.csv") })
}

// FuzzReadXLSX feeds the input both as a whole file and, since random bytes
// rarely survive the zip checksums, as the first sheet's XML inside an
// otherwise valid workbook (good.xlsx), which reaches the row parser.
func FuzzReadXLSX(f *testing.F) {
	for _, s := range addSeeds(f, "*.xlsx") {
		f.Add(s)
		if sheet, err := zipEntry(s, "xl/worksheets/sheet1.xml"); err == nil {
			f.Add(sheet)
		}
	}
	template, err := os.ReadFile("testdata/good.xlsx")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, "fuzz.xlsx")
		wb, err := replaceZipEntry(template, "xl/worksheets/sheet1.xml", data)
		if err != nil {
			t.Fatal(err)
		}
		fuzzRead(t, wb, "fuzz.xlsx")
	})
}

func zipEntry(zb []byte, name string) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		return nil, err
	}
	rc, err := zr.Open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func replaceZipEntry(zb []byte, name string, content []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range zr.File {
		w, err := zw.Create(e.Name)
		if err != nil {
			return nil, err
		}
		if e.Name == name {
			_, err = w.Write(content)
		} else {
			var rc io.ReadCloser
			if rc, err = e.Open(); err == nil {
				_, err = io.Copy(w, rc)
				rc.Close()
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
