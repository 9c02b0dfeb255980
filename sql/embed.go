// Package migrations holds the schema as numbered goose migration files, one
// folder per dialect (postgres/, sqlite/). It is named migrations, not sql, so
// that importing it never shadows database/sql.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// FS returns the migration files of dialect ("postgres" or "sqlite") at the
// root of the returned file system. An unknown dialect is an error.
func FS(dialect string) (fs.FS, error) {
	switch dialect {
	case "postgres", "sqlite":
		return fs.Sub(files, dialect)
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
}
