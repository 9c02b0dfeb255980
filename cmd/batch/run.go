package main

import (
	"context"
	"errors"
)

// cmdRun is not built yet.
func cmdRun(ctx context.Context, args []string, e env) error {
	return errors.New("batch run: not implemented yet")
}
