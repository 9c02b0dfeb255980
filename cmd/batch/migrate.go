package main

import (
	"context"
	"errors"
)

// cmdMigrate is not built yet.
func cmdMigrate(ctx context.Context, args []string, e env) error {
	return errors.New("batch migrate: not implemented yet")
}
