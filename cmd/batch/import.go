package main

import (
	"context"
	"errors"
)

// cmdImport is not built yet.
func cmdImport(ctx context.Context, args []string, e env) error {
	return errors.New("batch import: not implemented yet")
}
