package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/esimbatch/esimbatch/repo"
)

// cmdMigrate applies the schema to DATABASE_URL; it is idempotent.
func cmdMigrate(ctx context.Context, args []string, e env) error {
	if len(args) > 0 {
		return badConfig("migrate: takes no arguments, got %q", strings.Join(args, " "))
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
	if err := s.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintf(e.stdout, "schema up to date (%s)\n", s.Dialect())
	return nil
}
