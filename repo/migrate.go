package repo

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	migrations "github.com/esimbatch/esimbatch/sql"
)

// provider builds a goose provider over the embedded migrations of the
// store's dialect. withLock adds PostgreSQL's session (advisory) lock so two
// `batch migrate` never race; checks take no lock.
func (s *Store) provider(withLock bool) (*goose.Provider, error) {
	fsys, err := migrations.FS(s.dialect)
	if err != nil {
		return nil, err
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		if withLock {
			// One lock id per schema: tests migrate many schemas in parallel.
			l, err := lock.NewPostgresSessionLocker(
				lock.WithLockID(lockKey("migrate:"+s.schema)),
				lock.WithLockTimeout(1, 300))
			if err != nil {
				return nil, err
			}
			opts = append(opts, goose.WithSessionLocker(l))
		}
	}
	return goose.NewProvider(dialect, s.db.DB.DB, fsys, opts...)
}

// Migrate applies every pending migration; it is idempotent. Errors: the
// failing migration, wrapped (goose keeps the versions applied before it).
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.MigrateUp(ctx)
	return err
}

// Migration is one migration MigrateUp applied.
type Migration struct {
	Version  int64
	Source   string // the file's name, e.g. 00006_operator_actions.sql
	Duration time.Duration
}

// MigrationResult is what MigrateUp did: the migrations it applied, oldest
// first (none when the schema was up to date), and the version the
// database is at afterwards.
type MigrationResult struct {
	Applied []Migration
	Version int64
}

// MigrateUp applies every pending migration, like Migrate, and says which.
// Errors: the failing migration, wrapped; Applied then lists the ones
// applied before it.
func (s *Store) MigrateUp(ctx context.Context) (MigrationResult, error) {
	var out MigrationResult
	p, err := s.provider(true)
	if err != nil {
		return out, fmt.Errorf("repo: migrate: %w", err)
	}
	results, upErr := p.Up(ctx)
	if pe := (*goose.PartialError)(nil); errors.As(upErr, &pe) {
		results = pe.Applied
	}
	for _, r := range results {
		if r == nil || r.Source == nil || r.Error != nil {
			continue
		}
		out.Applied = append(out.Applied, Migration{Version: r.Source.Version, Source: filepath.Base(r.Source.Path), Duration: r.Duration})
	}
	if upErr != nil {
		return out, fmt.Errorf("repo: migrate: %w", upErr)
	}
	if out.Version, err = p.GetDBVersion(ctx); err != nil {
		return out, fmt.Errorf("repo: migrate: version: %w", err)
	}
	return out, nil
}

// MigrateDown rolls every migration back (tests, and a full uninstall).
func (s *Store) MigrateDown(ctx context.Context) error {
	p, err := s.provider(true)
	if err != nil {
		return fmt.Errorf("repo: migrate down: %w", err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("repo: migrate down: %w", err)
	}
	return nil
}

// CheckSchema compares the database with the embedded migrations without
// taking a lock: ErrSchemaBehind when migrations are pending (run `batch
// migrate`), ErrSchemaAhead when the database is newer than this binary,
// another error when the database cannot be read.
func (s *Store) CheckSchema(ctx context.Context) error {
	p, err := s.provider(false)
	if err != nil {
		return fmt.Errorf("repo: check schema: %w", err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("repo: check schema: %w", err)
	}
	switch {
	case current > target:
		return fmt.Errorf("repo: database at version %d, binary knows %d: %w", current, target, ErrSchemaAhead)
	case current < target:
		return fmt.Errorf("repo: database at version %d, binary needs %d: %w", current, target, ErrSchemaBehind)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("repo: check schema: %w", err)
	}
	if pending {
		return fmt.Errorf("repo: database misses migrations below version %d: %w", target, ErrSchemaBehind)
	}
	return nil
}
