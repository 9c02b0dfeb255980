package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/esimbatch/esimbatch/repo"
)

// cmdMigrate applies the schema to DATABASE_URL; it is idempotent and says
// which versions it applied ("already at version N" when none).
func cmdMigrate(ctx context.Context, args []string, e env) error {
	fs := newFlags(e, "migrate", "migrate",
		"Applies the pending schema migrations to DATABASE_URL (goose; PostgreSQL takes a lock so two\n"+
			"never race) and lists the versions applied. Run it before a new version's first pass.")
	if err := fs.parseNone(args); err != nil {
		return err
	}
	url, _ := e.lookup("DATABASE_URL")
	if strings.TrimSpace(url) == "" {
		return badConfig("DATABASE_URL: required")
	}
	if _, _, err := repo.DialectOf(url); err != nil {
		return badConfig("DATABASE_URL: %w", err)
	}
	s, err := repo.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer s.Close()
	res, err := s.MigrateUp(ctx)
	for _, m := range res.Applied {
		fmt.Fprintf(e.stdout, "applied %05d %s (%s)\n", m.Version, m.Source, m.Duration.Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(res.Applied) == 0 {
		fmt.Fprintf(e.stdout, "already at version %d (%s): nothing to apply\n", res.Version, s.Dialect())
		return nil
	}
	fmt.Fprintf(e.stdout, "schema at version %d (%s)\n", res.Version, s.Dialect())
	return nil
}
